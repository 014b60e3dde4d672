"""The exported artifacts run without adain_jax and match ``adain_jax.stylize``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import adain_jax
from adain_jax.cli import export as export_cli

# (N, H, W) of the contents and (Hs, Ws) of the style: none of them is a multiple of 8 and
# none was seen at export time (the artifact is traced with symbolic sizes only).
CASES = [((2, 19, 27), (13, 22)), ((1, 40, 33), (64, 17))]

# Each loader runs in a fresh interpreter: argv = artifact, inputs .npz, outputs .npz. It
# fails if adain_jax (or, for ONNX, jax) was imported.
STABLEHLO_LOADER = """
import sys
import numpy as np
import jax
data = np.load(sys.argv[2])
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
outs = {str(k): np.asarray(exported.call(data[f"c{k}"], data[f"s{k}"], data[f"a{k}"]))
        for k in range(int(data["n"]))}
assert not any(m.startswith("adain_jax") for m in sys.modules), "adain_jax was imported"
np.savez(sys.argv[3], **outs)
"""

ONNX_LOADER = """
import sys
import numpy as np
import onnxruntime as ort
data = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
assert [i.name for i in session.get_inputs()] == ["content", "style", "alpha"]
assert [o.name for o in session.get_outputs()] == ["image"]
assert session.get_inputs()[0].shape == ["N", "H", "W", 3], session.get_inputs()[0].shape
outs = {str(k): session.run(["image"], {"content": data[f"c{k}"], "style": data[f"s{k}"],
                                        "alpha": data[f"a{k}"]})[0]
        for k in range(int(data["n"]))}
assert not any(m.split(".")[0] in ("adain_jax", "jax") for m in sys.modules), "jax imported"
np.savez(sys.argv[3], **outs)
"""


@pytest.fixture(scope="module")
def cases(port_weight_files, tmp_path_factory):
    """``(inputs .npz path, [adain_jax.stylize output per case])`` with torch-saved weights."""
    vgg, dec = port_weight_files
    params = adain_jax.load_params(vgg=vgg, decoder=dec)
    rng = np.random.default_rng(0)
    inputs, refs = {"n": len(CASES)}, []
    for k, ((n, h, w), (hs, ws)) in enumerate(CASES):
        c = rng.random((n, h, w, 3), dtype=np.float32)
        s = rng.random((1, hs, ws, 3), dtype=np.float32)
        a = np.array(0.25 + 0.5 * k, np.float32)
        inputs.update({f"c{k}": c, f"s{k}": s, f"a{k}": a})
        refs.append(np.asarray(adain_jax.stylize(params, c, s, a)))
    path = tmp_path_factory.mktemp("export_cases") / "in.npz"
    np.savez(path, **inputs)
    return path, refs


def _export_and_run(fmt, loader, port_weight_files, cases, tmp_path, capsys):
    vgg, dec = port_weight_files
    artifact = tmp_path / f"adain.{fmt}"
    argv = ["--format", fmt, "--output", str(artifact), "--vgg", str(vgg), "--decoder", str(dec)]
    assert export_cli.main(argv) == 0
    printed = capsys.readouterr()
    assert f"wrote {artifact}" in printed.out
    assert f"exporting {fmt} to {artifact}" in printed.err  # a progress line first
    assert sorted(p.name for p in tmp_path.iterdir()) == [artifact.name]  # one file, no extras
    script = tmp_path / "load.py"
    script.write_text(loader)
    inputs, refs = cases
    proc = subprocess.run(
        [sys.executable, str(script), str(artifact), str(inputs), "out.npz"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outs = np.load(tmp_path / "out.npz")
    for k, ref in enumerate(refs):
        assert outs[str(k)].shape == ref.shape
        np.testing.assert_allclose(outs[str(k)], ref, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_stablehlo_runs_in_a_fresh_process_at_unseen_sizes(
    port_weight_files, cases, tmp_path, capsys
):
    _export_and_run("stablehlo", STABLEHLO_LOADER, port_weight_files, cases, tmp_path, capsys)


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_at_unseen_sizes(port_weight_files, cases, tmp_path, capsys):
    """One ONNX file with dynamic N, H, W, Hs, Ws; onnxruntime in a process without jax."""
    pytest.importorskip("jax2onnx", reason="the [export] extra")
    pytest.importorskip("onnxruntime", reason="the [export] extra")
    _export_and_run("onnx", ONNX_LOADER, port_weight_files, cases, tmp_path, capsys)


def test_cli_rejects_bad_flags(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--format", "tflite", "--output", str(tmp_path / "x")])
    assert e.value.code == 2
    missing = tmp_path / "no" / "x.bin"
    assert export_cli.main(["--format", "stablehlo", "--output", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"mine")
    for output, problem in ((tmp_path, "is a directory"), (weights, "is an input weight file")):
        argv = ["--format", "stablehlo", "--output", str(output), "--vgg", str(weights)]
        assert export_cli.main(argv) == 2
        assert capsys.readouterr().err.strip() == f"error: --output {output}: {problem}" + (
            "; refusing to overwrite it" if output == weights else ""
        )
    assert weights.read_bytes() == b"mine"
    code = export_cli.main(
        ["--format", "stablehlo", "--output", str(tmp_path / "x"), "--vgg", "nope.pth"]
    )
    assert code == 1
    assert "nope.pth" in capsys.readouterr().err
