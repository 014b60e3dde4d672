"""The exported artifacts run without adain_jax and match ``adain_jax.stylize``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import adain_jax
from adain_jax.cli import export as export_cli

# (N, H, W) of the contents and (Hs, Ws) of the style: none of them is a multiple of 8 and
# none was seen at export time (the artifact is traced with symbolic sizes only).
CASES = [((2, 19, 27), (13, 22)), ((1, 40, 33), (64, 17))]

LOADER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import jax
    data = np.load(sys.argv[2])
    exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
    outs = {k: np.asarray(exported.call(data[f"c{k}"], data[f"s{k}"], data[f"a{k}"]))
            for k in range(int(data["n"]))}
    assert not any(m.startswith("adain_jax") for m in sys.modules), "adain_jax was imported"
    np.savez(sys.argv[3], **{str(k): v for k, v in outs.items()})
    """
)


def test_stablehlo_runs_in_a_fresh_process_at_unseen_sizes(port_weight_files, tmp_path, capsys):
    vgg, dec = port_weight_files
    artifact = tmp_path / "adain.jaxexport"
    argv = ["--format", "stablehlo", "--output", str(artifact), "--vgg", str(vgg)]
    assert export_cli.main([*argv, "--decoder", str(dec)]) == 0
    assert f"wrote {artifact}" in capsys.readouterr().out
    params = adain_jax.load_params(vgg=vgg, decoder=dec)
    rng = np.random.default_rng(0)
    inputs, refs = {"n": len(CASES)}, []
    for k, ((n, h, w), (hs, ws)) in enumerate(CASES):
        c = rng.random((n, h, w, 3), dtype=np.float32)
        s = rng.random((1, hs, ws, 3), dtype=np.float32)
        a = np.float32(0.25 + 0.5 * k)
        inputs.update({f"c{k}": c, f"s{k}": s, f"a{k}": a})
        refs.append(np.asarray(adain_jax.stylize(params, c, s, a)))
    np.savez(tmp_path / "in.npz", **inputs)
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    proc = subprocess.run(
        [sys.executable, str(script), str(artifact), str(tmp_path / "in.npz"), "out.npz"],
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
def test_onnx_matches_stylize(tmp_path, monkeypatch):
    """jax2onnx takes ~95 s here, so this runs only with ADAIN_ONNX_TEST=1 (see docs/deploy.md)."""
    import os

    if os.environ.get("ADAIN_ONNX_TEST") != "1":
        pytest.skip("ONNX conversion takes ~95 s on a 2-core CPU; set ADAIN_ONNX_TEST=1")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("jax2onnx")
    (n, h, w), (hs, ws) = CASES[0]
    params = adain_jax.init_params(jax.random.PRNGKey(7))
    monkeypatch.setattr(export_cli, "load_params", lambda *a, **k: params)
    path = tmp_path / "adain.onnx"
    argv = ["--format", "onnx", "--output", str(path), "--size", f"{h}x{w}"]
    assert export_cli.main([*argv, "--style-size", f"{hs}x{ws}", "--batch", str(n)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adain.onnx"]  # self-contained
    session = ort.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["content", "style", "alpha"]
    rng = np.random.default_rng(1)
    c = rng.random((n, h, w, 3), dtype=np.float32)
    s = rng.random((1, hs, ws, 3), dtype=np.float32)
    a = np.array(0.6, np.float32)
    (out,) = session.run(["image"], {"content": c, "style": s, "alpha": a})
    np.testing.assert_allclose(out, np.asarray(adain_jax.stylize(params, c, s, a)), atol=1e-4)


def test_cli_rejects_bad_flags(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--format", "tflite", "--output", str(tmp_path / "x")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--format", "onnx", "--output", "x", "--size", "8x100"])
    assert e.value.code == 2
    assert ">= 9 px" in capsys.readouterr().err
    missing = tmp_path / "no" / "x.bin"
    assert export_cli.main(["--format", "stablehlo", "--output", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    code = export_cli.main(
        ["--format", "stablehlo", "--output", str(tmp_path / "x"), "--vgg", "nope.pth"]
    )
    assert code == 1
    assert "nope.pth" in capsys.readouterr().err
