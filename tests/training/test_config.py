"""TrainConfig: the flags, config.json and the resume rules all come from its fields."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from adain_jax.cli import train as train_cli
from adain_jax.training import config as config_lib
from adain_jax.training.config import RunError, TrainConfig

# config.json as a run made before TrainConfig existed wrote it (the folders are the test's):
# resuming such a workdir must compare every setting under the name it was saved with.
OLD_CONFIG_JSON = {
    "batch_size": 8, "content": "C", "content_weight": 1.0, "crop_size": 256,
    "decoder_norm": "none", "dtype": "float32", "encoder_sha256": "a" * 64, "eval_every": 1000,
    "fusion": "adain", "image_size": 512, "init_decoder": None, "keep": 3, "log_every": 50,
    "lr": 0.0001, "lr_decay": 5e-05, "max_steps": 160000, "num_samples": 4,
    "num_workers": None, "progress": True, "sample_content_dir": None, "sample_every": 1000,
    "sample_style_dir": None, "save_every": 1000, "seed": 0, "style": "S",
    "style_weight": 10.0, "vgg": None, "workdir": "W",
}  # fmt: skip
# A different value of each setting a resume must refuse, and of each it only notes.
FIXED_CHANGES = {
    "content": "/elsewhere/c", "style": "/elsewhere/s", "batch_size": 4, "image_size": 256,
    "crop_size": 128, "seed": 1, "fusion": "concat", "decoder_norm": "batch",
    "dtype": "bfloat16",
}  # fmt: skip
FREE_CHANGES = {
    "content_weight": 2.0, "style_weight": 3.0, "lr": 0.5, "lr_decay": 0.0, "max_steps": 10,
    "eval_every": 7, "keep": 1, "log_every": 5, "num_samples": 2, "num_workers": 2,
    "sample_every": 9, "save_every": 11,
}  # fmt: skip


@pytest.fixture
def dirs(tmp_path):
    for name in ("c", "s"):
        (tmp_path / name).mkdir()
    return ["--workdir", str(tmp_path / "w"), "--content-dir", str(tmp_path / "c"),
            "--style-dir", str(tmp_path / "s")]  # fmt: skip


def _parse(argv):
    return train_cli.config_from_args(train_cli.build_parser().parse_args(argv))


def test_every_field_is_a_flag_with_its_default(dirs, tmp_path):
    cfg = _parse(dirs)
    want = TrainConfig(workdir=str(tmp_path / "w"), content=dirs[3], style=dirs[5])
    assert cfg == want
    help_text = train_cli.build_parser().format_help()
    for f in dataclasses.fields(TrainConfig):
        flag = config_lib.flag(f.name) + ("-dir" if f.metadata["source"] else "")
        assert flag in help_text, flag
    assert "(default: 160000)" in help_text and "(default: 0.0001)" in help_text
    assert _parse([*dirs, "--no-progress", "--lr=0.5", "--num-workers=3"]) == dataclasses.replace(
        want, progress=False, lr=0.5, num_workers=3
    )


def test_tfds_sources(dirs):
    argv = [dirs[0], dirs[1], "--content-tfds", "coco/2017:train", *dirs[4:]]
    assert _parse(argv).content == "tfds:coco/2017:train"
    argv[3] = "coco/2017:train[:90%]+validation[10:20]"  # TFDS's slicing: colons in brackets
    assert _parse(argv).content == "tfds:" + argv[3]
    split = "train[:90%]+validation[10:20]"
    assert config_lib.parse_tfds_spec(_parse(argv).content) == ("coco/2017", split)  # the reader's
    argv[3] = "a:b:c"
    with pytest.raises(RunError, match="--content-tfds 'a:b:c': expected NAME or NAME:SPLIT"):
        _parse(argv)


def test_tfds_spec_parsing():
    assert config_lib.parse_tfds_spec("tfds:coco/2017:train") == ("coco/2017", "train")
    assert config_lib.parse_tfds_spec("tfds:wikiart") == ("wikiart", "train")
    assert config_lib.parse_tfds_spec("tfds:x:train[:90%]") == ("x", "train[:90%]")
    for bad in ("tfds:", "tfds::train", "tfds:a:b:c", "tfds:x:train[:5]:y"):
        with pytest.raises(RunError, match="expected NAME or NAME:SPLIT"):
            config_lib.parse_tfds_spec(bad)


def test_resume_rules(dirs):
    cfg = _parse(dirs)
    saved = config_lib.config_dict(cfg, "a" * 64)
    assert config_lib.check_config(cfg, saved, "a" * 64) == []
    # Free settings: a note; ignored ones (--vgg, --no-progress, the workdir's spelling): nothing.
    changed = dataclasses.replace(cfg, lr=0.5, progress=False, workdir=cfg.workdir + "/")
    assert config_lib.check_config(changed, saved, None) == [
        "--lr changed on resume: 0.0001 -> 0.5"
    ]
    # Fixed settings stop the run, naming the flag (or the encoder).
    with pytest.raises(RunError, match="resuming with a different --crop-size"):
        config_lib.check_config(dataclasses.replace(cfg, crop_size=128), saved, None)
    with pytest.raises(RunError, match=r"different encoder weights \(--vgg\) \('aaaa"):
        config_lib.check_config(cfg, saved, "b" * 64)
    # A config.json without some keys (an older workdir): those are not compared.
    del saved["crop_size"]
    assert config_lib.check_config(dataclasses.replace(cfg, crop_size=128), saved, None) == []


def test_a_workdir_from_before_trainconfig_resumes_under_the_same_rules(dirs, tmp_path):
    """Every key an older run saved is still compared: the same flags resume without a
    note, each fixed setting changed is refused naming its flag, each free one noted."""
    cfg = _parse(dirs)
    old = dict(OLD_CONFIG_JSON, content=cfg.content, style=cfg.style, workdir=cfg.workdir)
    for key in ("content", "style"):
        old[key] = str(Path(old[key]).resolve())
    config_lib.write_config(tmp_path, old)
    saved = config_lib.read_config(tmp_path)
    assert config_lib.check_config(cfg, saved, "a" * 64) == []
    for name, value in FIXED_CHANGES.items():
        # an image source is named by the flag that gave it: --content-dir, not --content
        given = config_lib.flag(name) + ("-dir" if name in ("content", "style") else "")
        with pytest.raises(RunError, match=f"resuming with a different {given} "):
            config_lib.check_config(dataclasses.replace(cfg, **{name: value}), saved, None)
    for name, value in FREE_CHANGES.items():
        notes = config_lib.check_config(dataclasses.replace(cfg, **{name: value}), saved, None)
        assert notes == [f"{config_lib.flag(name)} changed on resume: {old[name]!r} -> {value!r}"]


def test_validation_names_the_flag(dirs):
    with pytest.raises(RunError, match="^--num-workers -1: must not be negative$"):
        _parse([*dirs, "--num-workers=-1"])
    with pytest.raises(RunError, match="both 0: nothing to train"):
        _parse([*dirs, "--style-weight=0", "--content-weight=0"])
    for flag, value in (("--lr", "nan"), ("--style-weight", "inf"), ("--lr-decay", "-inf")):
        with pytest.raises(RunError, match=f"^{flag} {value}: must be a finite number$"):
            _parse([*dirs, f"{flag}={value}"])
    for flag, value in (("--lr", "1e-46"), ("--style-weight", "1e+39")):  # 0 or inf in float32
        with pytest.raises(RunError, match=re.escape(f"{flag} {value}: out of float32's range")):
            _parse([*dirs, f"{flag}={value}"])
    with pytest.raises(RunError, match=r"^--seed 9223372036854775808: must be below 2\*\*63$"):
        _parse([*dirs, "--seed=9223372036854775808"])
    (Path(dirs[3]) / "f").write_text("")
    for under in ("f", "f/w"):  # the workdir, or a folder it would be made in, is a file
        where = f"{dirs[3]}/{under}"
        with pytest.raises(RunError, match=f"^--workdir {where}: (.*/f )?is a file, expected a"):
            _parse(["--workdir", where, *dirs[2:]])
    with pytest.raises(RunError, match="--content-dir /nonexistent: no such directory"):
        _parse([dirs[0], dirs[1], "--content-dir", "/nonexistent", *dirs[4:]])
    with pytest.raises(RunError, match=f"--content-dir {dirs[3]}/f: not a directory"):
        _parse([dirs[0], dirs[1], "--content-dir", f"{dirs[3]}/f", *dirs[4:]])


def test_a_workdir_inside_a_searched_image_folder_is_refused(dirs, tmp_path):
    """Its sample grids (and checkpoints) would be read as training images: the data of a
    resumed run would change. The workdir itself, or any folder below one."""
    content = dirs[3]
    for workdir in (content, f"{content}/run", f"{content}/a/b"):
        with pytest.raises(RunError, match=f"^--workdir {workdir}: inside --content-dir"):
            _parse(["--workdir", workdir, *dirs[2:]])
    held = tmp_path / "held"
    held.mkdir()
    argv = ["--workdir", str(held / "w"), *dirs[2:], "--sample-style-dir", str(held)]
    with pytest.raises(RunError, match="inside --sample-style-dir"):
        _parse(argv)
    with pytest.raises(RunError, match=r"^--max-steps 2147483648: must be below 2\*\*31$"):
        _parse([*dirs, "--max-steps=2147483648"])
    _parse([*dirs, "--max-steps=2147483647"])  # the largest allowed; a sibling workdir is fine
