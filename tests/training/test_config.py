"""TrainConfig: the flags, config.json and the resume rules all come from its fields."""

from __future__ import annotations

import dataclasses

import pytest

from adain_jax.cli import train as train_cli
from adain_jax.training import config as config_lib
from adain_jax.training.config import RunError, TrainConfig

# config.json of a run made before TrainConfig existed: resuming such workdirs must work.
CONFIG_JSON_KEYS = {
    "batch_size", "content", "content_weight", "crop_size", "dtype", "encoder_sha256",
    "eval_every", "image_size", "keep", "log_every", "lr", "lr_decay", "max_steps",
    "num_samples", "num_workers", "progress", "sample_content_dir", "sample_every",
    "sample_style_dir", "save_every", "seed", "style", "style_weight", "vgg", "workdir",
    "fusion", "decoder_norm", "init_decoder",
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
    assert set(config_lib.config_dict(cfg, "x" * 64)) == CONFIG_JSON_KEYS
    assert config_lib.HYPERPARAMS == ("lr", "lr_decay", "style_weight", "content_weight")


def test_tfds_sources(dirs):
    argv = [dirs[0], dirs[1], "--content-tfds", "coco/2017:train", *dirs[4:]]
    assert _parse(argv).content == "tfds:coco/2017:train"
    argv[3] = "a:b:c"
    with pytest.raises(RunError, match="--content-tfds 'a:b:c': expected NAME or NAME:SPLIT"):
        _parse(argv)


def test_resume_rules(dirs):
    cfg = _parse(dirs)
    saved = config_lib.config_dict(cfg, "a" * 64)
    assert config_lib.check_config(cfg, saved, "a" * 64) == []
    # Free settings: a note; ignored ones (--vgg, --no-progress): nothing.
    changed = dataclasses.replace(cfg, lr=0.5, progress=False)
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


def test_validation_names_the_flag(dirs):
    with pytest.raises(RunError, match="^--num-workers -1: must not be negative$"):
        _parse([*dirs, "--num-workers=-1"])
    with pytest.raises(RunError, match="both 0: nothing to train"):
        _parse([*dirs, "--style-weight=0", "--content-weight=0"])
    with pytest.raises(RunError, match="--content-dir /nonexistent: no such directory"):
        _parse([dirs[0], dirs[1], "--content-dir", "/nonexistent", *dirs[4:]])
