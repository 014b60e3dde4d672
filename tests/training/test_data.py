"""Input pipeline: folders/TFDS, decoding, crops, bad files, determinism, resumption, shards.

References are independent: crops are located inside images resized by Pillow directly,
colours are computed with NumPy, file identity is encoded in pixel values.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from adain_jax.io import images
from adain_jax.training import data, evaluate, sources

CROP = 16


def _save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _noise(seed, h, w):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _solid(value, h=24, w=20):
    """An image whose every pixel is (value, 255 - value, 7): identifies the file."""
    return np.broadcast_to(np.array([value, 255 - value, 7], np.uint8), (h, w, 3)).copy()


def _windows(big, crop):
    """All ``crop x crop`` windows of ``big`` [H, W, 3] as a set of bytes."""
    h, w = big.shape[:2]
    return {
        big[t : t + crop, s : s + crop].tobytes()
        for t in range(h - crop + 1)
        for s in range(w - crop + 1)
    }


def _window_error(crop, bigs):
    """Smallest max-abs difference between ``crop`` and any same-size window of ``bigs``."""
    best = 255
    c = crop.shape[0]
    for big in bigs:
        win = np.lib.stride_tricks.sliding_window_view(big.astype(int), (c, c), axis=(0, 1))
        diff = np.abs(win - np.moveaxis(crop.astype(int), -1, 0)).max(axis=(2, 3, 4))
        best = min(best, int(diff.min()))
    return best


def _collect(it, n):
    return [next(it) for _ in range(n)]


def _same(batches_a, batches_b):
    return all(
        np.array_equal(a[k], b[k]) for a, b in zip(batches_a, batches_b, strict=True) for k in a
    )


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """7 solid-colour PNGs (values 0, 30, ..., 180) in nested folders + non-images."""
    root = tmp_path_factory.mktemp("colours")
    for i in range(7):
        _save(root / f"d{i % 3}" / f"img{i}.png", _solid(30 * i))
    (root / "notes.txt").write_text("not an image")
    (root / "d0" / "fake.jpgx").write_bytes(b"x")
    return root


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Random-noise images of various sizes and formats (unique windows)."""
    root = tmp_path_factory.mktemp("noise")
    _save(root / "a.png", _noise(1, 30, 40))
    _save(root / "b.JPG", _noise(2, 44, 33), quality=95)
    _save(root / "sub" / "c.webp", _noise(3, 25, 25), lossless=True)
    _save(root / "sub" / "deeper" / "d.bmp", _noise(4, 20, 50))
    return root


# --------------------------------------------------------------------------- folders


def test_find_images_recursive_sorted_case_insensitive(colours, noise):
    found = images.find_images(noise)
    rel = [str(p.relative_to(noise)) for p in map(type(noise), found)]
    assert rel == ["a.png", "b.JPG", "sub/c.webp", "sub/deeper/d.bmp"]
    assert len(images.find_images(colours)) == 7  # .txt and .jpgx ignored


def test_missing_and_empty_folders_name_the_folder(tmp_path):
    missing = tmp_path / "nope"
    empty = tmp_path / "empty_dir"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.md").write_text("x")
    cfg = data.PipelineConfig(batch_size=2, crop_size=CROP)
    with pytest.raises(data.DataError, match="image folder '.*nope': no such directory"):
        data.make_pair_iterator(missing, empty, cfg, shard_index=0, shard_count=1)
    with pytest.raises(data.DataError, match="image folder '.*empty_dir': no image files"):
        data.make_pair_iterator(empty, empty, cfg, shard_index=0, shard_count=1)
    with pytest.raises(data.DataError, match="empty_dir"):
        evaluate.load_eval_images(empty, 16, 2)
    assert issubclass(data.DataError, ValueError)


def test_batch_not_divisible_by_processes(colours):
    cfg = data.PipelineConfig(batch_size=3, crop_size=CROP)
    with pytest.raises(data.DataError, match="divisible"):
        data.make_pair_iterator(colours, colours, cfg, shard_index=0, shard_count=2)


# --------------------------------------------------------------------------- decoding


def test_any_mode_and_tiny_images_in_a_folder_give_rgb_batches(tmp_path):
    root = tmp_path / "modes"
    rng = np.random.default_rng(1)
    rgb = _noise(10, 30, 26)
    _save(root / "gray.png", rng.integers(0, 256, (28, 24), dtype=np.uint8))
    _save(root / "rgba.png", rng.integers(0, 256, (24, 30, 4), dtype=np.uint8))
    Image.fromarray(rgb).quantize(8).save(root / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65536, (26, 22), dtype=np.uint16)).save(root / "deep.png")
    _save(root / "tiny.png", _noise(11, 5, 7))  # far smaller than the crop
    (root / "loop").symlink_to(root, target_is_directory=True)  # walked once
    assert len(images.find_images(root)) == 6
    cfg = data.PipelineConfig(batch_size=6, image_size=20, crop_size=CROP)
    with data.make_pair_iterator(root, root, cfg) as it:  # shard: jax process 0 of 1
        for batch in _collect(it, 3):
            for key in ("content", "style"):
                assert batch[key].shape == (6, CROP, CROP, 3) and batch[key].dtype == np.uint8
        assert it.skipped == 0 and not it.bad_files


def test_jpeg_draft_is_close_to_full_decode(tmp_path):
    # Smooth content so that DCT-domain downscaling and a full decode agree closely.
    y, x = np.mgrid[0:600, 0:800]
    img = np.stack([x * 255 // 800, y * 255 // 600, (x + y) * 255 // 1400], -1).astype(np.uint8)
    _save(tmp_path / "big.jpg", img, quality=95)
    cfg = data.PipelineConfig(image_size=64, crop_size=CROP)
    fast = sources.FolderReader(tmp_path).load(0, cfg.draft_size)
    full = sources.FolderReader(tmp_path).load(
        0, dataclasses.replace(cfg, jpeg_draft=False).draft_size
    )
    assert full.size == (800, 600) and fast.size == (100, 75)  # 1/8: still >= 85 x 64
    shape = sources.target_shape(600, 800, 64, CROP)
    assert shape == (64, 85)
    fast, full = (images.resize_rgb(im, *shape) for im in (fast, full))
    assert not np.array_equal(fast, full)  # the draft path was taken
    assert np.abs(fast - full).mean() < 3 / 255


# --------------------------------------------------------------------------- crops


def test_batches_shapes_and_crops_are_windows_of_resized_images(noise):
    cfg = data.PipelineConfig(batch_size=4, image_size=24, crop_size=CROP, seed=3)
    resized = []
    for path in images.find_images(noise):
        with Image.open(path) as im:
            w, h = im.size
            short = 24
            # test.lua / torchvision Resize: the long side truncated
            size = (short, int(h * short / w)) if w <= h else (int(w * short / h), short)
            resized.append(np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR)))
    with data.make_pair_iterator(noise, noise, cfg, shard_index=0, shard_count=1) as it:
        batches = _collect(it, 3)
    for batch in batches:
        assert set(batch) == {"content", "style"}
        for key in batch:
            assert batch[key].shape == (4, CROP, CROP, 3) and batch[key].dtype == np.uint8
            for crop in batch[key]:
                # Only the window is resampled: equal up to +-1 rounding.
                assert _window_error(crop, resized) <= 1
    positions = {b["content"][i].tobytes() for b in batches for i in range(4)}
    assert len(positions) > 4  # crops vary


def test_images_smaller_than_crop_are_upscaled(tmp_path):
    tiny = _noise(8, 30, 20)  # 20 wide, 30 high: smaller than the crop of 32
    _save(tmp_path / "t" / "tiny.png", tiny)
    cfg = data.PipelineConfig(batch_size=2, image_size=0, crop_size=32)
    with data.make_pair_iterator(
        tmp_path / "t", tmp_path / "t", cfg, shard_index=0, shard_count=1
    ) as it:
        batch = next(it)
    upscaled = np.asarray(Image.fromarray(tiny).resize((32, 48), Image.Resampling.BILINEAR))
    assert all(_window_error(c, [upscaled]) <= 1 for c in batch["content"])


# --------------------------------------------------------------------------- bad files


def test_corrupt_and_truncated_files_skipped_warned_once_and_counted(tmp_path):
    root = tmp_path / "mixed"
    _save(root / "good1.png", _solid(10))
    _save(root / "good2.png", _solid(200))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    buf = io.BytesIO()
    Image.fromarray(_noise(9, 64, 64)).save(buf, format="JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cfg = data.PipelineConfig(batch_size=4, image_size=0, crop_size=CROP)
    good = {_solid(10)[:CROP, :CROP].tobytes(), _solid(200)[:CROP, :CROP].tobytes()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with data.make_pair_iterator(root, root, cfg, shard_index=0, shard_count=1) as it:
            batches = _collect(it, 10)
            skipped = it.skipped
    for batch in batches:
        for crop in np.concatenate([batch["content"], batch["style"]]):
            assert crop.tobytes() in good
    bad_warnings = [
        str(w.message) for w in caught if issubclass(w.category, sources.BadImageWarning)
    ]
    assert len(bad_warnings) == 2
    assert any("corrupt.jpg" in m for m in bad_warnings)
    assert any("truncated.jpg" in m for m in bad_warnings)
    # 10 batches of 4 = exactly 10 epochs of 4 records per stream, each epoch holding the
    # 2 bad files once: 20 replaced samples per stream.
    assert skipped == 40


def test_folder_without_any_readable_image_fails(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(b"garbage")
    cfg = data.PipelineConfig(batch_size=1, crop_size=CROP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = data.make_pair_iterator(
            tmp_path / "b", tmp_path / "b", cfg, shard_index=0, shard_count=1
        )
        with pytest.raises(data.DataError, match="no readable image"):
            next(it)
    it.close()


def test_one_readable_file_is_always_found_across_epoch_boundaries(tmp_path):
    # A replacement window that straddles two shuffled epochs ([bad | good], [good | bad]
    # seen from index 1) must still reach the readable file: every seed, every step.
    root = tmp_path / "one_good"
    _save(root / "good.png", _solid(40))
    (root / "empty.png").write_bytes(b"")
    good = _solid(40)[:CROP, :CROP].tobytes()
    for seed in range(6):
        cfg = data.PipelineConfig(batch_size=1, image_size=0, crop_size=CROP, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with data.make_pair_iterator(root, root, cfg, shard_index=0, shard_count=1) as it:
                for batch in _collect(it, 20):
                    assert batch["content"][0].tobytes() == good
                    assert batch["style"][0].tobytes() == good


def test_an_unreadable_file_is_warned_once_with_its_name_escaped(tmp_path):
    # The held-out samples and the pipeline meet the same bad file: one warning, one line,
    # and a name cannot forge an "error:" line or send a terminal escape.
    root = tmp_path / "odd"
    _save(root / "good.png", _solid(10))
    (root / "bad\x1b[2J\nerror: forged.png").write_bytes(b"junk")
    cfg = data.PipelineConfig(batch_size=2, image_size=0, crop_size=CROP)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        assert len(evaluate.load_eval_images(root, CROP, 4)) == 1
        with data.make_pair_iterator(root, root, cfg, shard_index=0, shard_count=1) as it:
            _collect(it, 3)
    bad = [str(w.message) for w in caught if issubclass(w.category, sources.BadImageWarning)]
    assert bad == [
        f"skipping unreadable image {root}/bad\\x1b[2J\\nerror: forged.png (not an image in a "
        "supported format (JPEG, PNG, WEBP, BMP, TIFF, GIF), or a damaged header)"
    ]


# --------------------------------------------------------------------------- order


def _identity(batch_images):
    """The solid-colour value of each crop (see ``_solid``)."""
    return [int(c[0, 0, 0]) for c in batch_images]


def test_determinism_seeds_and_independent_streams(colours):
    cfg = data.PipelineConfig(batch_size=4, image_size=0, crop_size=CROP, seed=1)
    runs = []
    for seed in (1, 1, 2):
        scfg = dataclasses.replace(cfg, seed=seed)
        it = data.make_pair_iterator(colours, colours, scfg, shard_index=0, shard_count=1)
        runs.append(_collect(it, 4))
        it.close()
    assert _same(runs[0], runs[1])
    assert not _same(runs[0], runs[2])
    content = [v for b in runs[0] for v in _identity(b["content"])]
    style = [v for b in runs[0] for v in _identity(b["style"])]
    assert content != style  # same folder, independently shuffled streams
    # Every epoch (7 images) is a permutation of the folder, reshuffled per epoch.
    values = sorted(30 * i for i in range(7))
    assert sorted(content[:7]) == values and sorted(content[7:14]) == values
    assert content[:7] != content[7:14]


@pytest.mark.slow
def test_state_restore_continues_exactly(noise):
    cfg = data.PipelineConfig(batch_size=2, image_size=24, crop_size=CROP, seed=5)
    with data.make_pair_iterator(noise, noise, cfg, shard_index=0, shard_count=1) as it:
        reference = _collect(it, 7)  # uninterrupted, in-process

    def run(num_workers, state, n):
        wcfg = dataclasses.replace(cfg, num_workers=num_workers)
        with data.make_pair_iterator(noise, noise, wcfg, shard_index=0, shard_count=1) as it:
            if state is not None:
                it.set_state(state)
            batches = _collect(it, n)
            return batches, json.loads(json.dumps(it.get_state()))  # JSON-able

    batches, state = run(0, None, 2)
    assert _same(batches, reference[:2]) and state["next_batch"] == 2
    # In-process state -> 2 worker processes -> in-process again.
    batches, state = run(2, state, 3)
    assert _same(batches, reference[2:5]) and state["next_batch"] == 5
    batches, _ = run(0, state, 2)
    assert _same(batches, reference[5:7])


def test_process_shards_concatenate_to_the_one_process_global_batch(colours):
    """Multi-process runs: process k of n yields rows k*B/n ... of the SAME global batch."""
    cfg = data.PipelineConfig(batch_size=4, image_size=0, crop_size=CROP)
    with data.make_pair_iterator(colours, colours, cfg, shard_index=0, shard_count=1) as it:
        whole = _collect(it, 5)
    # The global batches cover the 7 files as two shuffled epochs would.
    firsts = [v for b in whole for v in _identity(b["content"])]
    assert set(firsts[:7]) == {30 * i for i in range(7)}
    for count in (2, 4):
        shards = []
        for index in range(count):
            with data.make_pair_iterator(
                colours, colours, cfg, shard_index=index, shard_count=count
            ) as it:
                shards.append(_collect(it, 5))
        for b, global_batch in enumerate(whole):
            for key in ("content", "style"):
                parts = [shard[b][key] for shard in shards]
                assert parts[0].shape[0] == 4 // count  # per-process rows
                np.testing.assert_array_equal(np.concatenate(parts), global_batch[key])


# --------------------------------------------------------------------------- TFDS


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = data.PipelineConfig(batch_size=2, image_size=0, crop_size=CROP)
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        source = tfds.data_source("mnist", split="train")
        windows = set()
        for i in range(len(source)):
            gray = source[i]["image"][..., 0]
            windows |= _windows(np.repeat(gray[..., None], 3, -1), CROP)
        with data.make_pair_iterator(
            "tfds:mnist:train", "tfds:mnist", cfg, shard_index=0, shard_count=1
        ) as it:
            batches = _collect(it, 3)
    for batch in batches:
        assert batch["content"].shape == (2, CROP, CROP, 3)
        for crop in np.concatenate([batch["content"], batch["style"]]):
            assert crop.tobytes() in windows


# --------------------------------------------------------------------------- eval


def test_load_eval_images_sorted_first_limit_centre_crop(noise):
    loaded = evaluate.load_eval_images(noise, size=20, limit=2)
    assert len(loaded) == 2
    for path, image in zip(images.find_images(noise)[:2], loaded, strict=True):
        with Image.open(path) as im:
            w, h = im.size  # the long side truncated, as test.lua / torchvision Resize
            size = (20, int(h * 20 / w)) if w <= h else (int(w * 20 / h), 20)
            resized = np.asarray(im.convert("RGB").resize(size, Image.Resampling.BILINEAR))
        # torchvision CenterCrop: offsets round((H - 20) / 2), half to even
        top, left = round((size[1] - 20) / 2), round((size[0] - 20) / 2)
        expected = resized[top : top + 20, left : left + 20].astype(np.float32) / 255
        assert image.dtype == np.float32 and image.shape == (20, 20, 3)
        np.testing.assert_array_equal(image, expected)
