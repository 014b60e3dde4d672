"""The demo page: its /stylize API (gradio_client) and the page in a headless Chromium."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import adain_jax
from adain_jax.io.images import load_image

gr = pytest.importorskip("gradio")
from adain_jax.cli import demo  # noqa: E402
from tests.local_cluster import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONTENT = ROOT / "examples" / "content" / "chelsea.jpg"
STYLE = ROOT / "examples" / "style" / "starry_night.jpg"
SCREENSHOT = ROOT / "docs" / "demo.png"


@pytest.fixture(scope="module")
def served():
    """(url, params) of the demo serving the built-in weights on 127.0.0.1 (so that the
    README's screenshot shows a real stylization)."""
    params = adain_jax.load_params("builtin")
    app = demo.build_app(params)
    port = free_port()
    app.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        show_error=True,
    )  # fmt: skip
    yield f"http://127.0.0.1:{port}/", params
    app.close()


def _reference(params, content, style, alpha, size=0) -> np.ndarray:
    """``adain_jax.stylize`` on the images the page reads, as float levels 0..255."""
    c, s = load_image(content, size), load_image(style, size)
    return np.asarray(adain_jax.stylize(params, c, s, alpha)) * 255.0


@pytest.mark.slow
def test_api_stylize_matches_stylize_and_survives_bad_uploads(served, tmp_path):
    from gradio_client import Client, handle_file

    url, params = served
    rng = np.random.default_rng(0)
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.fromarray((rng.random((40, 52, 3)) * 255).astype(np.uint8)).save(content)
    Image.fromarray((rng.random((33, 30, 3)) * 255).astype(np.uint8)).save(style)
    client = Client(url, verbose=False)
    out = client.predict(handle_file(content), handle_file(style), 0.8, api_name="/stylize")
    got = np.asarray(Image.open(out).convert("RGB"), np.float32)
    ref = _reference(params, content, style, 0.8)
    assert got.shape == ref.shape == (40, 52, 3)
    assert np.abs(got - ref).max() <= 1.0  # within 1/255 (the PNG's rounding)
    small, text = tmp_path / "small.png", tmp_path / "text.png"
    Image.fromarray(np.zeros((5, 30, 3), np.uint8)).save(small)
    text.write_text("not an image")
    for bad, message in ((small, "each side must be at least 9 px"), (text, "cannot identify")):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(bad), handle_file(style), 0.8, api_name="/stylize")
    again = client.predict(handle_file(content), handle_file(style), 0.8, api_name="/stylize")
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB"), np.float32), got)


CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.mark.skipif(
    not os.path.exists(CHROMEDRIVER) or shutil.which("chromium") is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
@pytest.mark.slow
def test_page_in_headless_chromium(served, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, params = served
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,1100"):  # fmt: skip
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#content input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#content input[type=file]").send_keys(str(CONTENT))
        driver.find_element(By.CSS_SELECTOR, "#style input[type=file]").send_keys(str(STYLE))
        size = driver.find_element(By.CSS_SELECTOR, "#size input")
        size.send_keys(Keys.CONTROL, "a")
        size.send_keys("256", Keys.TAB)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#content img"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#style img"))
        time.sleep(0.5)  # let the uploads settle into the components' values
        driver.find_element(By.CSS_SELECTOR, "#run").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result img"))
        wait.until(lambda d: "px in" in d.find_element(By.CSS_SELECTOR, "#took textarea")
                   .get_attribute("value"))  # fmt: skip
        src = driver.find_element(By.CSS_SELECTOR, "#result img").get_attribute("src")
        with urllib.request.urlopen(src, timeout=30) as response:
            got = np.asarray(Image.open(BytesIO(response.read())).convert("RGB"), np.float32)
        # The README's picture is refreshed only on request; a test run leaves the tree clean.
        shot = (
            SCREENSHOT if os.environ.get("ADAIN_JAX_UPDATE_SCREENSHOT") else tmp_path / "demo.png"
        )
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
    ref = _reference(params, CONTENT, STYLE, 1.0, size=256)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1.0  # within 1/255


def test_cli_help_shows_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "127.0.0.1" in out and "7860" in out


# ------------------------------------------------------------------ limits (issue 20)


def test_request_pixels_are_bounded_before_allocating(tmp_path, port_weight_files):
    """``size=20000`` (12.9 GB before) and a 67 KB 20 MP upload at ``/stylize``'s size 0
    are refused in one line within a second, nothing allocated."""
    from tests.io.test_image_bounds import flat_png

    params = adain_jax.load_params(vgg=port_weight_files[0], decoder=port_weight_files[1])
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(small)
    big = tmp_path / "big.png"
    big.write_bytes(flat_png(5000, 4000))
    assert big.stat().st_size < 100_000
    limit = demo.Limits().max_pixels
    for content, size in ((small, 20000), (big, 0)):
        start = time.perf_counter()
        with pytest.raises(ValueError, match=f"over the limit of {limit} pixels") as info:
            demo.stylize_files(params, str(content), str(small), size=size, max_pixels=limit)
        assert time.perf_counter() - start < 2
        assert "--max-pixels" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("controls", "problem"),
    [({"alpha": 1.5}, "alpha must be a number in [0, 1], got 1.5"),
     ({"alpha": None}, "alpha must be a number in [0, 1], got None"),
     ({"mix": float("nan"), "style2": str(STYLE)}, "mix must be a number in [0, 1], got nan"),
     ({"mask": str(CONTENT)}, "a mask needs a second style (white: style 1, black: style 2)")],
)  # fmt: skip
def test_bad_controls_are_one_line_errors(controls, problem):
    """API callers send any value: alpha 1.5 extrapolated, None failed deep inside, a mask
    without a second style was ignored."""
    alpha = controls.pop("alpha", 1.0)
    with pytest.raises(ValueError) as info:
        demo.stylize_files({}, str(CONTENT), str(STYLE), alpha, **controls)
    assert str(info.value) == problem


def test_limit_flags_and_analytics_default(port_weight_files):
    args = demo.build_parser().parse_args([])
    assert demo.limits_from_args(args) == demo.Limits() and not args.analytics
    bad = demo.build_parser().parse_args(["--queue-size", "0"])
    with pytest.raises(ValueError, match="--queue-size must be >= 1"):
        demo.limits_from_args(bad)
    params = adain_jax.load_params(vgg=port_weight_files[0], decoder=port_weight_files[1])
    assert demo.build_app(params).analytics_enabled is False


@pytest.mark.slow
def test_upload_size_queue_and_cleanup(tmp_path, port_weight_files):
    from gradio_client import Client, handle_file

    params = adain_jax.load_params(vgg=port_weight_files[0], decoder=port_weight_files[1])
    limits = demo.Limits(max_upload_mb=1, queue_size=3, concurrency=1)
    huge = tmp_path / "huge.png"
    huge.write_bytes(os.urandom(2 << 20))  # 2 MB, not an image: refused by size first
    style = tmp_path / "s.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(style)
    with demo.upload_folder() as uploads:
        app = demo.build_app(params, limits=limits)
        port = free_port()
        demo.launch_app(
            app, limits, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
            quiet=True,
        )  # fmt: skip
        try:
            assert app._queue.max_size == 3 and app.max_file_size == 1 << 20  # Gradio's mb
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            with pytest.raises(Exception, match="(?i)file size|too large|exceeds"):
                client.predict(handle_file(huge), handle_file(style), 1.0, api_name="/stylize")
        finally:
            app.close()
    assert not uploads.exists()
