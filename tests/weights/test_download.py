"""Downloads and the pretrained cache against a local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import threading

import numpy as np
import pytest
from PIL import Image

import adain_jax
from adain_jax.weights import convert, download, pretrained
from adain_jax.weights import safetensors_io as weights_io
from adain_jax.weights.download import DownloadError


class _Server:
    """Serves ``files[path] = bytes`` on 127.0.0.1; ``short[path] = n`` claims n extra bytes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.short: dict[str, int] = {}
        self.unannounced: set[str] = set()  # sent without a Content-Length
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if self.path not in server.unannounced:
                    length = len(body) + server.short.get(self.path, 0)
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    """A local server; downloads are expected to have the sha256 of the file it serves."""
    s = _Server()

    def served_sha256(name: str) -> str:  # test-made files differ from the pinned ones
        bodies = [b for p, b in s.files.items() if p.endswith("/" + name)]
        return hashlib.sha256(bodies[0]).hexdigest() if bodies else pretrained.SHA256[name]

    monkeypatch.setattr(pretrained, "expected_sha256", served_sha256)
    yield s
    s.close()


@pytest.fixture(scope="module")
def port_bytes(port_weight_files):
    vgg, dec = port_weight_files
    return vgg.read_bytes(), dec.read_bytes()


def _files_in(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_pretrained_downloads_converts_once(tmp_path, server, port_bytes, monkeypatch, closed_port):
    vgg_bytes, dec_bytes = port_bytes
    server.files["/rel/vgg_normalised.pth"] = vgg_bytes
    server.files["/rel/decoder.pth"] = dec_bytes
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/rel/")
    cache = tmp_path / "cache"
    enc_path, dec_path = pretrained.adain_pretrained(cache)
    assert server.requests == ["/rel/vgg_normalised.pth", "/rel/decoder.pth"]
    assert (cache / "downloads" / "vgg_normalised.pth").read_bytes() == vgg_bytes
    assert (cache / "downloads" / "decoder.pth").read_bytes() == dec_bytes
    assert not [p for p in _files_in(cache) if p.endswith(".part")]
    # The converted files hold the same arrays as converting the served files directly.
    for path, network, raw in ((enc_path, "encoder", vgg_bytes), (dec_path, "decoder", dec_bytes)):
        (tmp_path / "src.pth").write_bytes(raw)
        want = convert.load_torch_weights(tmp_path / "src.pth", network)
        got_network, got = weights_io.load(path)
        assert got_network == network
        for layer in want:
            np.testing.assert_array_equal(got[layer]["kernel"], want[layer]["kernel"])
    # Second call: no request, same paths.
    assert pretrained.adain_pretrained(cache) == (enc_path, dec_path)
    assert len(server.requests) == 2
    # A damaged converted file is rebuilt from the cached download, still offline.
    dec_path.write_bytes(b"garbage")
    monkeypatch.setenv(pretrained.URL_ENV["adain"], f"http://127.0.0.1:{closed_port}/")
    assert pretrained.adain_pretrained(cache) == (enc_path, dec_path)
    assert weights_io.load(dec_path)[0] == "decoder"
    assert len(server.requests) == 2
    # Both damaged: the download is fetched again.
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/rel/")
    dec_path.write_bytes(b"garbage")
    (cache / "downloads" / "decoder.pth").write_bytes(b"garbage")
    assert pretrained.adain_pretrained(cache) == (enc_path, dec_path)
    assert server.requests[2:] == ["/rel/decoder.pth"]
    assert (cache / "downloads" / "decoder.pth").read_bytes() == dec_bytes


def test_load_params_default_uses_the_cache(tmp_path, server, port_bytes, monkeypatch):
    import adain_jax

    server.files["/vgg_normalised.pth"], server.files["/decoder.pth"] = port_bytes
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "env_cache"))
    params = adain_jax.load_params()
    assert set(params) == {"encoder", "decoder"}
    assert (tmp_path / "env_cache" / "downloads" / "decoder.pth").is_file()


@pytest.mark.parametrize("which", ["vgg_normalised.pth", "decoder.pth"])
def test_corrupt_download_leaves_nothing(tmp_path, server, port_bytes, monkeypatch, which):
    server.files["/vgg_normalised.pth"], server.files["/decoder.pth"] = port_bytes
    server.files["/" + which] = np.random.default_rng(0).bytes(100_000)
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=f"{which}: downloaded file is not valid") as info:
        pretrained.adain_pretrained(cache)
    assert "\n" not in str(info.value) and "--vgg" in str(info.value)
    assert not any(which in p for p in _files_in(cache))


def test_wrong_network_download_is_rejected(tmp_path, server, port_bytes, monkeypatch):
    vgg_bytes, dec_bytes = port_bytes
    server.files["/vgg_normalised.pth"] = dec_bytes  # a valid file of the wrong kind
    server.files["/decoder.pth"] = dec_bytes
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    with pytest.raises(DownloadError, match="expected encoder weights"):
        pretrained.adain_pretrained(tmp_path)
    assert _files_in(tmp_path) == []


def test_truncated_response_leaves_nothing(tmp_path, server, port_bytes, monkeypatch):
    server.files["/vgg_normalised.pth"], server.files["/decoder.pth"] = port_bytes
    server.short["/vgg_normalised.pth"] = 1000  # Content-Length larger than the body
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    with pytest.raises(DownloadError) as info:
        pretrained.adain_pretrained(tmp_path / "cache")
    assert "vgg_normalised.pth" in str(info.value)
    assert _files_in(tmp_path) == []


@pytest.mark.parametrize("announced", [True, False])
def test_an_oversized_body_is_stopped_and_leaves_nothing(tmp_path, server, announced):
    server.files["/big.bin"] = b"x" * 5000
    if not announced:
        server.unannounced.add("/big.bin")
    problem = "announces 5000 bytes, over" if announced else "over the 4096-byte bound .stopped"
    with pytest.raises(DownloadError, match=problem):
        download.fetch(server.url + "/big.bin", tmp_path / "big.bin", max_bytes=4096)
    assert _files_in(tmp_path) == []
    small = download.fetch(server.url + "/big.bin", tmp_path / "big.bin", max_bytes=5000)
    assert small.read_bytes() == b"x" * 5000


def test_fetch_checks_sha256_prefix(tmp_path, server):
    body = b"some weights" * 1000
    digest = hashlib.sha256(body).hexdigest()
    server.files["/w.bin"] = body
    with pytest.raises(DownloadError, match="sha256"):
        download.fetch(server.url + "/w.bin", tmp_path / "w.bin", sha256_prefix="00000000")
    assert _files_in(tmp_path) == []
    path = download.fetch(server.url + "/w.bin", tmp_path / "w.bin", sha256_prefix=digest[:8])
    assert path.read_bytes() == body
    assert download.sha256_of(path) == digest


def test_torchvision_vgg19_sha256_mismatch(tmp_path, server, torchvision_file, monkeypatch):
    monkeypatch.undo()  # the pinned sha256, not the served file's
    path, _ = torchvision_file
    server.files["/vgg19-dcbb9e9d.pth"] = path.read_bytes()  # random weights: other sha256
    monkeypatch.setenv(pretrained.URL_ENV["vgg19"], server.url + "/vgg19-dcbb9e9d.pth")
    with pytest.raises(DownloadError, match="dcbb9e9d") as info:
        pretrained.torchvision_vgg19(tmp_path)
    assert "--vgg" in str(info.value)
    assert _files_in(tmp_path) == []


def test_http_error_and_unreachable_server(tmp_path, server, monkeypatch, closed_port):
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/missing/")
    with pytest.raises(DownloadError, match="404") as info:
        pretrained.adain_pretrained(tmp_path)
    assert not info.value.unreachable  # the server answered
    monkeypatch.setenv(pretrained.URL_ENV["adain"], f"http://127.0.0.1:{closed_port}/")
    with pytest.raises(DownloadError) as info:
        pretrained.adain_pretrained(tmp_path)
    assert info.value.unreachable
    message = str(info.value)
    assert message.startswith("could not download http://127.0.0.1")
    for flag in ("--vgg", "--decoder", "--weights"):
        assert flag in message
    assert "\n" not in message
    assert _files_in(tmp_path) == []


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "c"))
    assert download.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(download.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "adain_jax"


def test_pinned_sha256_env_override(monkeypatch):
    assert pretrained.sha256_env("vgg_normalised.pth") == "ADAIN_JAX_SHA256_VGG_NORMALISED"
    assert pretrained.sha256_env("vgg19-dcbb9e9d.pth") == "ADAIN_JAX_SHA256_VGG19"
    assert pretrained.expected_sha256("decoder.pth") == pretrained.SHA256["decoder.pth"]
    assert all(len(v) == 64 for v in pretrained.SHA256.values())
    assert pretrained.SHA256["vgg19-dcbb9e9d.pth"].startswith("dcbb9e9d")
    monkeypatch.setenv("ADAIN_JAX_SHA256_DECODER", "ab" * 32)
    assert pretrained.expected_sha256("decoder.pth") == "ab" * 32


def test_wrong_hash_is_deleted_and_never_parsed(tmp_path, server, port_bytes, monkeypatch):
    """A served hostile pickle with the wrong sha256 is refused before the reader sees it."""
    from tests import hostile_pth as h

    monkeypatch.undo()  # the pinned hashes
    canary = tmp_path / "pwned"
    payload = h.call(h.global_("os", "system"), h.string(f"touch {canary}"))
    hostile = h.record(payload)  # a legacy stream whose first record runs a command
    server.files["/vgg_normalised.pth"] = hostile
    server.files["/decoder.pth"] = port_bytes[1]
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    parsed = []
    monkeypatch.setattr(convert, "load_torch_weights", lambda *a, **k: parsed.append(a))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        pretrained.adain_pretrained(cache)
    message = str(info.value)
    want = pretrained.SHA256["vgg_normalised.pth"]
    assert "/vgg_normalised.pth" in message and want in message
    assert hashlib.sha256(hostile).hexdigest() in message and "\n" not in message
    assert parsed == [] and not canary.exists()
    assert _files_in(tmp_path) == []


def test_given_files_are_checked_before_any_download(tmp_path, server, monkeypatch):
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="missing.pth: no such file"):
        adain_jax.load_params(vgg=tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="gone.safetensors: no such file"):
        adain_jax.load_params(decoder=tmp_path / "gone.safetensors")
    assert server.requests == [] and not (tmp_path / "cache").exists()


def test_failed_download_errors_name_the_api_or_the_flags(tmp_path, server, monkeypatch, capsys):
    # A server that answers 404: a failed download, not an unreachable network (which
    # falls back to the built-in weights instead).
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(DownloadError) as info:
        adain_jax.load_params()
    message = str(info.value)
    assert "load_params(vgg=" in message and "--vgg" not in message and "\n" not in message

    from adain_jax.cli import infer

    image = tmp_path / "c.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(image)
    assert infer.main(["--content", str(image), "--style", str(image), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: could not download") and "--vgg" in err
    assert "load_params" not in err and "\n" not in err


def test_a_file_put_in_the_cache_by_hand_is_checked_like_a_download(
    tmp_path, server, port_bytes, monkeypatch, capsys
):
    """A hand-placed file that is not the expected one is moved aside (kept) and fetched;
    the converted copy follows the source: replacing the file converts it again."""
    vgg_bytes, dec_bytes = port_bytes
    server.files["/vgg_normalised.pth"], server.files["/decoder.pth"] = port_bytes
    monkeypatch.setenv(pretrained.URL_ENV["adain"], server.url + "/")
    cache = tmp_path / "cache"
    downloads = cache / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "decoder.pth").write_bytes(b"not the decoder")
    (downloads / "vgg_normalised.pth").write_bytes(vgg_bytes)  # the right file: used as is
    enc_path, dec_path = pretrained.adain_pretrained(cache)
    assert server.requests == ["/decoder.pth"]
    assert (downloads / "decoder.pth").read_bytes() == dec_bytes
    assert (downloads / "decoder.pth.rejected").read_bytes() == b"not the decoder"
    err = capsys.readouterr().err
    assert "decoder.pth: sha256" in err and "moved to decoder.pth.rejected" in err
    # Another decoder, with its digest stated: a new converted copy, not the old one.
    import torch

    from tests import torch_reference as ref

    torch.save(ref.randomize(ref.decoder(), 7).state_dict(), downloads / "decoder.pth")
    digest = hashlib.sha256((downloads / "decoder.pth").read_bytes()).hexdigest()
    served = pretrained.expected_sha256
    monkeypatch.setattr(
        pretrained,
        "expected_sha256",
        lambda name: digest if name == "decoder.pth" else served(name),
    )
    enc2, dec2 = pretrained.adain_pretrained(cache)
    assert dec2 != dec_path and dec2.is_file() and dec_path.is_file()
    assert digest[:16] in str(dec2.parent)
    first, second = weights_io.load(dec_path)[1], weights_io.load(dec2)[1]
    layer = next(iter(first))
    assert not np.array_equal(first[layer]["kernel"], second[layer]["kernel"])
    assert len(server.requests) == 1  # nothing fetched: the file matched its digest


def test_a_hand_placed_t7_without_a_digest_is_used_as_is(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.sha256_env("decoder.t7"), raising=False)
    source = tmp_path / "cache" / "downloads" / "decoder.t7"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"anything")
    got, digest = pretrained._cached_source(tmp_path / "cache", "decoder.t7", "decoder", "x")
    assert got == source and digest == hashlib.sha256(b"anything").hexdigest()
    monkeypatch.setenv(pretrained.sha256_env("decoder.t7"), "0" * 64)  # a stated digest
    monkeypatch.setenv(pretrained.URL_ENV["authors"], "http://127.0.0.1:9/")
    with pytest.raises(download.DownloadError):
        pretrained._cached_source(
            tmp_path / "cache", "decoder.t7", "decoder", "http://127.0.0.1:9/x"
        )
    assert (source.parent / "decoder.t7.rejected").read_bytes() == b"anything"


def test_vgg19_falls_back_to_the_builtin_encoder_only_when_unreachable(
    tmp_path, monkeypatch, capsys, closed_port, not_found_url
):
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(pretrained, "_noted", set())
    monkeypatch.setenv(pretrained.URL_ENV["vgg19"], f"http://127.0.0.1:{closed_port}/vgg19.pth")
    assert pretrained.vgg19_or_builtin() == pretrained.builtin_file("encoder")
    assert pretrained.vgg19_or_builtin() == pretrained.builtin_file("encoder")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: ") and "--vgg" in err[0]  # once
    monkeypatch.setenv(pretrained.URL_ENV["vgg19"], not_found_url + "vgg19.pth")
    with pytest.raises(DownloadError, match="404"):
        pretrained.vgg19_or_builtin()
