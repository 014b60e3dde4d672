"""``adain-jax demo``: a Gradio page to try style transfer (flags: ``adain-jax demo --help``).

The page: content and style uploads (and the shipped examples), alpha, colour preservation (off /
CORAL / luminance), a second style with a mix weight, an optional mask, the output size; the result
(downloadable) and the time taken. API: ``api_name="/stylize"`` takes (content image, style image,
alpha) and returns the image (``gradio_client``). The weights load once at start; each request
runs the plan and back-ends of ``infer.py`` (``adain_jax.inference``), so sizes are padded to 64 px
buckets and a bucket compiles once. A bad upload is one message on the page (``gr.Error``); the
server keeps serving.

Every request is bounded by ``Limits`` (one flag per field; pixels are counted after resizing,
``/stylize`` runs at the uploaded size). Uploads are kept in a fresh temporary folder, removed when
the server stops (Ctrl-C, SIGTERM). Gradio's analytics are off unless ``--analytics``. Images are
read by ``adain_jax.io.images`` (its format allow-list: no EPS/PS, no Ghostscript, also for
Gradio's own handling of uploads in this process).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Light modules only: the flags (and the port) are checked before JAX is imported.
from adain_jax.cli import compile_cache, exits, helptext
from adain_jax.cli.weight_flags import add_weight_flags, load_weights
from adain_jax.io.messages import EXIT_RUNTIME, UsageError, one_line
from adain_jax.nn.names import MIN_IMAGE_SIZE

if TYPE_CHECKING:
    import numpy as np

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COLOR_MODES = {"off": None, "CORAL": "coral", "luminance": "luminance"}
DEFAULT_SIZE = 512
UPLOAD_DIR_ENV = "GRADIO_TEMP_DIR"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may cost (the demo's flags).

    Attributes:
      max_pixels: pixels of the content and of each style after resizing (2**21: a 1080p image
        fits; ~1.5 KB of memory per pixel in the network).
      max_upload_mb: bytes of one uploaded file, in MB.
      queue_size: requests waiting at most; more are turned away ("queue full").
      concurrency: requests running at once.
    """

    max_pixels: int = 1 << 21
    max_upload_mb: int = 25
    queue_size: int = 16
    concurrency: int = 1


def stylize_files(
    params: dict,
    content: str,
    style: str,
    alpha: float = 1.0,
    *,
    color: str | None = None,
    style2: str | None = None,
    mix: float = 0.5,
    mask: str | None = None,
    size: int = 0,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Stylize image files as ``infer.py`` does (its plan and back-ends); returns uint8
    ``[H, W, 3]``. ``size``: shorter side of content and styles (0 = as uploaded); ``mix``:
    weight of ``style2`` (ignored with ``mask``, which routes white -> style 1, black -> style 2);
    ``max_pixels``: the bound on each image after resizing (default the image limit,
    ``io.images.pixel_limit``). Raises ``ValueError`` (``ImageError``) with a one-line message,
    also for ``alpha`` or ``mix`` outside [0, 1] and a ``mask`` without ``style2`` (API callers
    send any value)."""
    import numpy as np

    from adain_jax.inference import backend
    from adain_jax.inference.plan import JobOptions, make_plan
    from adain_jax.inference.run import load_mask, stylize_one
    from adain_jax.io import images as image_io

    def read(path: str) -> np.ndarray:
        return image_io.load_image(
            path, size, min_size=MIN_IMAGE_SIZE, max_pixels=max_pixels,
            setting="the demo's --max-pixels; try a smaller size",
        )  # fmt: skip

    for name, value in (("alpha", alpha), ("mix", mix)):
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:  # also nan
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if mask is not None and style2 is None:
        raise ValueError("a mask needs a second style (white: style 1, black: style 2)")
    content_img = read(content)
    styles = [read(p) for p in ([style] if style2 is None else [style, style2])]
    labels = load_mask(mask, len(styles)) if mask is not None else None
    weights = None if style2 is None or labels is not None else (1.0 - mix, mix)
    opts = JobOptions(
        alpha=float(alpha), preserve_color=color, style_weights=weights, progress=False
    )
    plan = make_plan(opts, [], labels)
    net_content, net_styles, finish = backend.preserve_color(color, content_img, styles)
    stats = backend.encode_styles(params, net_styles, plan.dtype, plan.bucket)
    out = stylize_one(params, net_content, stats, plan)
    return image_io.to_uint8(np.asarray(finish(out)))


def build_app(
    params: dict,
    examples: Path = EXAMPLES,
    limits: Limits = Limits(),
    analytics: bool = False,
):
    """The Gradio Blocks page for ``params`` (``{"encoder", "decoder"}``), each request bounded
    by ``limits.max_pixels``; its queue is set by ``launch_app``. ``analytics``: Gradio's usage
    statistics (off by default)."""
    import gradio as gr  # optional dependency: the [demo] extra

    # style2 and mask default to None: the /stylize_full API marks them optional.
    def run(content, style, alpha, color, style2=None, mix=0.5, mask=None, size=DEFAULT_SIZE):
        if content is None or style is None:
            raise gr.Error("Upload a content image and a style image first.")
        if color not in COLOR_MODES:
            raise gr.Error(f"colour preservation: choose from {', '.join(COLOR_MODES)}")
        start = time.perf_counter()
        try:
            size = int(size or 0)
        except (TypeError, ValueError, OverflowError):
            raise gr.Error("size: expected a whole number of pixels") from None
        if size < 0:
            raise gr.Error(f"size must be >= 0, got {size}")
        try:
            out = stylize_files(
                params, content, style, alpha, color=COLOR_MODES[color], style2=style2,
                mix=mix, mask=mask, size=size, max_pixels=limits.max_pixels,
            )  # fmt: skip
        except (ValueError, OSError) as e:
            if isinstance(e, OSError) and e.filename and e.strerror:
                raise gr.Error(f"{Path(e.filename).name}: {e.strerror}") from None
            raise gr.Error(one_line(e)) from None
        except MemoryError:
            raise gr.Error("out of memory for this request; try a smaller size") from None
        took = time.perf_counter() - start
        return out, f"{out.shape[1]}x{out.shape[0]} px in {took:.2f} s"

    def api(content, style, alpha):
        return run(content, style, alpha, "off", None, 0.5, None, 0)[0]

    image = {"type": "filepath", "image_mode": None, "format": "png"}
    with gr.Blocks(title="AdaIN style transfer (adain-jax)", analytics_enabled=analytics) as app:
        gr.Markdown("# AdaIN style transfer\nHuang & Belongie, ICCV 2017, in JAX.")
        with gr.Row():
            content = gr.Image(label="content", elem_id="content", **image)
            style = gr.Image(label="style", elem_id="style", **image)
            result = gr.Image(label="result", elem_id="result", format="png", interactive=False)
        with gr.Row():
            alpha = gr.Slider(0, 1, value=1.0, step=0.05, label="alpha (style strength)")
            color = gr.Radio(list(COLOR_MODES), value="off", label="colour preservation")
            size = gr.Number(DEFAULT_SIZE, precision=0, label="size (shorter side, 0 = as is)",
                             elem_id="size")  # fmt: skip
        with gr.Accordion("second style, mask", open=False):
            with gr.Row():
                style2 = gr.Image(label="second style (optional)", **image)
                mix = gr.Slider(0, 1, value=0.5, step=0.05, label="weight of the second style")
                mask = gr.Image(label="mask: white -> style 1, black -> style 2", **image)
        button = gr.Button("Stylize", variant="primary", elem_id="run")
        took = gr.Textbox(label="time", elem_id="took", interactive=False)
        contents = sorted((examples / "content").glob("*.jpg"))
        styles = sorted((examples / "style").glob("*.jpg"))
        if contents and styles:  # none in a non-editable install: no examples row
            pairs = [[str(c), str(styles[i % len(styles)])] for i, c in enumerate(contents)]
            gr.Examples(pairs, inputs=[content, style])
        button.click(
            run,
            [content, style, alpha, color, style2, mix, mask, size],
            [result, took],
            api_name="stylize_full",
        )
        hidden = gr.Button(visible=False)
        hidden.click(api, [content, style, alpha], [result], api_name="stylize")
    return app


def build_parser(prog: str = "adain-jax demo") -> argparse.ArgumentParser:
    """The demo flags."""
    parser = helptext.parser(
        prog, "Serve the AdaIN style-transfer web page (Gradio) and its /stylize API."
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    add(
        "--port", type=int, default=7860, help="port to listen on (checked before the weights load)"
    )
    default = Limits()
    for field, metavar, text in (
        ("max_pixels", "N", "pixels of the content and of each style after resizing, per request"),
        ("max_upload_mb", "MB", "size of one uploaded file"),
        ("queue_size", "N", "requests that may wait; more are turned away"),
        ("concurrency", "N", "requests that run at once"),
    ):
        flag, value = "--" + field.replace("_", "-"), getattr(default, field)
        add(flag, type=int, default=value, metavar=metavar, help=text)
    add("--analytics", action="store_true", help="allow Gradio's usage statistics (off)")
    add_weight_flags(parser)
    return parser  # fmt: skip


def port_problem(host: str, port: int) -> str | None:
    """One line naming ``--port`` (or ``--host``) when ``host:port`` (``port`` in 1..65535) cannot
    be listened on (in use, not allowed), else ``None``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return f"--host {host}: {one_line(e)}"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as e:
            why = "already in use" if e.errno == errno.EADDRINUSE else one_line(e)
            return f"--port {port}: cannot listen on {host}:{port} ({why}); pass another --port"
    return None


def limits_from_args(args: argparse.Namespace) -> Limits:
    """The ``Limits`` of the flags; ``ValueError`` (one line) for one below 1."""
    limits = Limits(args.max_pixels, args.max_upload_mb, args.queue_size, args.concurrency)
    for field in dataclasses.fields(Limits):
        if getattr(limits, field.name) < 1:
            flag = "--" + field.name.replace("_", "-")
            raise ValueError(f"{flag} must be >= 1, got {getattr(limits, field.name)}")
    return limits


@contextlib.contextmanager
def upload_folder() -> Iterator[Path]:
    """A fresh folder for Gradio's uploads and outputs (``$GRADIO_TEMP_DIR`` while inside),
    removed on the way out, also after SIGTERM (``exits.run`` raises it as Ctrl-C)."""
    folder = Path(tempfile.mkdtemp(prefix="adain_jax_demo_"))
    before = os.environ.get(UPLOAD_DIR_ENV)
    os.environ[UPLOAD_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(UPLOAD_DIR_ENV, None)
        else:
            os.environ[UPLOAD_DIR_ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


def launch_app(app, limits: Limits, **launch_kwargs) -> None:
    """``app.queue(...).launch(...)`` with ``limits``' queue, concurrency and upload size."""
    app.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    app.launch(max_file_size=f"{limits.max_upload_mb}mb", **launch_kwargs)


def main(argv: Sequence[str] | None = None, *, prog: str = "adain-jax demo") -> int:
    """Load the weights once, serve until interrupted; returns the exit status (``exits.run``)."""
    args = build_parser(prog).parse_args(argv)
    return exits.run(lambda: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        return exits.fail("the demo needs gradio: pip install 'adain-jax[demo]'", EXIT_RUNTIME)
    try:
        limits = limits_from_args(args)
    except ValueError as e:
        raise UsageError(e) from None
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: must be in 1..65535")
    problem = port_problem(args.host, args.port)
    if problem:
        return exits.fail(problem, EXIT_RUNTIME)
    compile_cache.enable()
    params = load_weights(args)
    if not args.analytics:
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    with upload_folder():
        app = build_app(params, limits=limits, analytics=args.analytics)
        try:
            launch_app(app, limits, server_name=args.host, server_port=args.port, show_error=True)
        except KeyboardInterrupt:
            pass
        except OSError as e:  # e.g. Gradio's "Cannot find empty port" (taken meanwhile)
            where = f"--host {args.host} --port {args.port}"
            return exits.fail(f"{where}: {one_line(e)}; pass another --port", EXIT_RUNTIME)
        finally:
            app.close()
    return 0
