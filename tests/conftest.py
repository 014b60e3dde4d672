"""Shared fixtures: random weights written in the real torch file layouts."""

from __future__ import annotations

import os

import numpy as np
import pytest

# The commands turn on a persistent compilation cache (adain_jax.cli.compile_cache): off
# in tests, so no test writes to the user's cache or depends on what an earlier run left;
# the cache's own tests turn it on in subprocesses.
os.environ.setdefault("ADAIN_JAX_XLA_CACHE", "off")

torch = pytest.importorskip("torch")

from tests import torch_reference as ref  # noqa: E402


@pytest.fixture(scope="session")
def torch_nets():
    """(vgg_normalised, decoder) torch modules with random He-scaled weights."""
    torch.manual_seed(0)
    return ref.randomize(ref.vgg_normalised(), 1).eval(), ref.randomize(ref.decoder(), 2).eval()


@pytest.fixture(scope="session")
def port_weight_files(tmp_path_factory, torch_nets):
    """Paths of ``vgg_normalised.pth`` and ``decoder.pth`` made with ``torch.save``."""
    vgg, dec = torch_nets
    root = tmp_path_factory.mktemp("port_weights")
    vgg_path, dec_path = root / "vgg_normalised.pth", root / "decoder.pth"
    torch.save(vgg.state_dict(), vgg_path)
    torch.save(dec.state_dict(), dec_path)
    return vgg_path, dec_path


@pytest.fixture(scope="session")
def torchvision_file(tmp_path_factory):
    """Path of a random torchvision-layout ``vgg19`` state dict, and the dict."""
    sd = ref.torchvision_vgg19_state_dict(seed=3)
    path = tmp_path_factory.mktemp("torchvision") / "vgg19-random.pth"
    torch.save(sd, path)
    return path, sd


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections are refused)."""
    from tests.local_cluster import free_port

    return free_port()


@pytest.fixture
def not_found_url():
    """The URL of a server on 127.0.0.1 that answers every request with HTTP 404 (a
    failed download, as opposed to an unreachable server)."""
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def random_images(seed: int, n: int, h: int, w: int) -> np.ndarray:
    """Float32 NHWC images in [0, 1]."""
    return np.random.default_rng(seed).random((n, h, w, 3), dtype=np.float32)
