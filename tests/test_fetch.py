"""Fetching KMNIST from a mirror served by a real HTTP server on 127.0.0.1."""

import contextlib
import functools
import hashlib
import http.server
import shutil
import socket
import threading
import time

import pytest

from conftest import ROOT, SAMPLE
from nnstudies.kmnist import data as kmnist


@pytest.fixture
def mirror(tmp_path):
    """A writable copy of the bundled sample mirror."""
    path = tmp_path / "mirror"
    shutil.copytree(ROOT / SAMPLE, path)
    return path


@contextlib.contextmanager
def _serve(mirror, handler=None):
    """Serve the mirror over HTTP on a free loopback port with ``handler`` (the plain file
    server by default); yields its URL."""
    handler = functools.partial(handler or _QuietHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def served(mirror):
    with _serve(mirror) as url:
        yield url


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _sums(mirror):
    return kmnist.parse_md5sums((mirror / "MD5SUMS").read_text(), "MD5SUMS")


def test_http_mirror_happy_path(served, mirror, tmp_path):
    out = tmp_path / "out"
    fetched = kmnist.fetch(served, out)
    assert {f.name for f in fetched} == set(kmnist.official_files())
    for f in fetched:
        assert kmnist.md5sum(out / f.name) == _sums(mirror)[f.name] and not f.reused
    images, labels = kmnist.load_split(out, train=True)
    assert images.shape == (8000, 1, 28, 28) and labels.shape == (8000,)
    assert images.min() >= -1 and images.max() <= 1 and set(labels.tolist()) == set(range(10))
    # A second fetch keeps the verified files.
    assert all(f.reused for f in kmnist.fetch(served, out))


def test_wrong_md5_is_rejected_and_good_copy_kept(served, mirror, tmp_path):
    out = tmp_path / "out"
    kmnist.fetch(served, out)
    good = (out / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(good[:-7] + b"garbage")
    (out / "t10k-labels-idx1-ubyte.gz").write_bytes(b"stale")  # forces a re-download
    with pytest.raises(kmnist.DataError, match="t10k-labels-idx1-ubyte.gz has md5 .* expected"):
        kmnist.fetch(served, out)
    # The rejected download did not replace what was there.
    assert (out / "t10k-labels-idx1-ubyte.gz").read_bytes() == b"stale"


def test_truncated_file_is_rejected(served, mirror, tmp_path):
    path = mirror / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(kmnist.DataError, match="corrupt or truncated"):
        kmnist.fetch(served, tmp_path / "out")
    assert not (tmp_path / "out" / "train-images-idx3-ubyte.gz").exists()


def test_missing_file_is_a_clear_error(served, mirror, tmp_path):
    (mirror / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(kmnist.DataError, match="train-labels-idx1-ubyte.gz not found"):
        kmnist.fetch(served, tmp_path / "out")


def test_checksums_cannot_be_skipped(served, mirror, tmp_path):
    (mirror / "MD5SUMS").unlink()
    with pytest.raises(kmnist.DataError, match="MD5SUMS not found"):
        kmnist.fetch(served, tmp_path / "out")
    (mirror / "MD5SUMS").write_text("d41d8cd98f00b204e9800998ecf8427e  other.gz\n")
    with pytest.raises(kmnist.DataError, match="no checksum for"):
        kmnist.fetch(served, tmp_path / "out")


def test_server_down_fails_within_seconds_with_offline_hint(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(kmnist.DataError) as err:
        kmnist.fetch(f"http://127.0.0.1:{port}/", tmp_path / "out")
    assert time.monotonic() - start < 15
    assert "-S kmnist.source=data/samples/kmnist-holdout" in str(err.value)


class _GzAnswers(_QuietHandler):
    """Serves MD5SUMS from the mirror; every gz file gets ``answer(self)`` instead."""

    def do_GET(self):
        if not self.path.endswith(".gz"):
            return super().do_GET()
        try:
            self.answer()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: as it should
            pass

    def head(self, length=None):
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()


class _Trickle(_GzAnswers):
    def answer(self):  # a byte every 50 ms, each well within the socket timeout, for ever
        self.head(10**6)
        for _ in range(10**4):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)


class _Endless(_GzAnswers):
    def answer(self):  # zeros as fast as the client reads, no length announced
        self.head()
        while True:
            self.wfile.write(bytes(1 << 16))


class _HugeLength(_GzAnswers):
    def answer(self):
        self.head(10**12)


class _ClosesEarly(_GzAnswers):
    def answer(self):
        self.head(1000)
        self.wfile.write(b"only ten b")
        self.close_connection = True


def test_a_trickling_mirror_fails_at_the_deadline_not_never(mirror, tmp_path):
    limits = kmnist.Limits(grace=0.5, min_rate=1000)  # 20 bytes/s arrive: over after 0.5 s
    start = time.monotonic()
    with _serve(mirror, _Trickle) as url, pytest.raises(kmnist.DataError) as err:
        kmnist.fetch(url, tmp_path / "out", limits)
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz sent only " in message and "under 1000 bytes/s" in message
    assert "\n" not in message and not (tmp_path / "out").exists()


@pytest.mark.parametrize("handler", [_Endless, _HugeLength])
def test_an_endless_mirror_stops_at_the_size_cap(mirror, tmp_path, handler):
    start = time.monotonic()
    with _serve(mirror, handler) as url, pytest.raises(kmnist.DataError) as err:
        kmnist.fetch(url, tmp_path / "out")  # the real cap: 64 MiB over loopback is quick
    assert time.monotonic() - start < 10
    assert str(kmnist.MAX_BYTES) in str(err.value) and "a KMNIST file can be" in str(err.value)
    assert kmnist.MAX_BYTES > 47_040_016  # the largest real file, unpacked, fits


def test_a_body_cut_short_is_retried_then_one_line(mirror, tmp_path):
    with _serve(mirror, _ClosesEarly) as url, pytest.raises(kmnist.DataError) as err:
        kmnist.fetch(url, tmp_path / "out", kmnist.Limits(retries=2))
    assert "after 2 tries (connection closed after 10 of 1000 bytes)" in str(err.value)


@contextlib.contextmanager
def _raw_server(reply: bytes | None):
    """A TCP server on 127.0.0.1 that accepts, sends ``reply`` and closes, or with None says
    nothing and holds the connection; yields (url, connections accepted so far)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            if reply is not None:
                conn.recv(65536)
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", accepted
    stop.set()
    listener.close()
    for conn in accepted:
        conn.close()


def test_a_silent_server_fails_after_one_timeout_without_retries(tmp_path):
    start = time.monotonic()
    with _raw_server(None) as (url, accepted), pytest.raises(kmnist.DataError) as err:
        kmnist.fetch(url, tmp_path / "out", kmnist.Limits(timeout=0.5))
    assert time.monotonic() - start < 1.4  # three tries would take 0.5 * 3 + 0.5 + 1 s
    assert len(accepted) == 1
    assert "MD5SUMS sent nothing for 0.5 s (not retried" in str(err.value)
    assert "-S kmnist.source=data/samples/kmnist-holdout" in str(err.value)


@pytest.mark.parametrize("reply,tries,message", [
    (b"SSH-2.0-OpenSSH_9.6\r\n", 1, "did not answer in HTTP (BadStatusLine)"),
    (b"", 2, "after 2 tries (Remote end closed connection without response)")])  # transient
def test_a_server_that_does_not_speak_http_is_one_line(tmp_path, reply, tries, message):
    with _raw_server(reply) as (url, accepted), pytest.raises(kmnist.DataError) as err:
        kmnist.fetch(url, tmp_path / "out", kmnist.Limits(retries=2))
    assert message in str(err.value) and len(accepted) == tries


def test_a_transient_error_is_still_retried(mirror, tmp_path):
    seen = []

    class Flaky(_QuietHandler):
        def do_GET(self):
            seen.append(self.path)
            if seen.count(self.path) == 1 and self.path.endswith("MD5SUMS"):
                return self.send_error(503)
            return super().do_GET()

    with _serve(mirror, Flaky) as url:
        assert len(kmnist.fetch(url, tmp_path / "out")) == 4
    assert seen.count("/MD5SUMS") == 2


def test_a_gzip_bomb_is_refused_before_it_fills_memory(mirror, tmp_path):
    import gzip

    _republish(mirror, "t10k-labels-idx1-ubyte.gz", gzip.compress(bytes(kmnist.MAX_BYTES + 1), 1))
    with pytest.raises(kmnist.DataError, match="unpacks to more than .*; nothing was replaced"):
        kmnist.fetch(str(mirror), tmp_path / "out")


def test_directory_mirror_and_corrupt_gz_on_load(mirror, tmp_path):
    out = tmp_path / "out"
    kmnist.fetch(str(mirror), out)
    (out / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(kmnist.DataError, match="t10k-images-idx3-ubyte.gz: not a readable") as err:
        kmnist.load_split(out, train=False)
    assert str(err.value).endswith("restore it: dvc repro -f fetch_kmnist")  # not circular


def _republish(mirror, name, gz_bytes):
    """Put ``gz_bytes`` in the mirror as ``name`` with a matching MD5SUMS line: a mirror that
    is consistent with itself but serves bad data."""
    (mirror / name).write_bytes(gz_bytes)
    sums = _sums(mirror)
    sums[name] = hashlib.md5(gz_bytes).hexdigest()
    (mirror / "MD5SUMS").write_text("".join(f"{md5}  {n}\n" for n, md5 in sums.items()))


@pytest.mark.parametrize("bad", ["labels out of range", "not IDX", "truncated IDX", "unpaired"])
def test_bad_data_with_matching_md5_never_replaces_the_good_copy(mirror, tmp_path, bad):
    import gzip

    out = tmp_path / "out"
    kmnist.fetch(str(mirror), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    labels = gzip.decompress((mirror / "t10k-labels-idx1-ubyte.gz").read_bytes())
    name, raw, message = {
        "labels out of range": ("t10k-labels-idx1-ubyte.gz", labels[:-1] + bytes([12]),
                                "label 12 is out of range (allowed 0..9)"),
        "not IDX": ("t10k-labels-idx1-ubyte.gz", b"hello world, no magic here",
                    "wrong magic number"),
        "truncated IDX": ("t10k-labels-idx1-ubyte.gz", labels[:500], "(truncated?)"),
        "unpaired": ("t10k-labels-idx1-ubyte.gz",
                     labels[:4] + (999).to_bytes(4, "big") + labels[8:8 + 999],
                     "t10k has 1000 images but 999 labels"),
    }[bad]
    _republish(mirror, name, gzip.compress(raw))
    with pytest.raises(kmnist.DataError, match="kmnist.source=") as err:
        kmnist.fetch(str(mirror), out)
    assert message in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the good copy, whole


def test_official_checksums_come_from_torchvision():
    files = kmnist.official_files()
    assert set(files) == set(kmnist.FILES)  # every source holds the official names
    assert files["train-images-idx3-ubyte.gz"] == "bdb82020997e1d708af4cf47b453dcf7"
    assert hashlib.md5(b"").hexdigest() not in files.values()


# ---------------------------------------------------------------------------
# The fetch stage, in process: counts are metrics, source and checksums are results.

STAGE_PARAMS = "tracking: {enabled: false, required: false}\nkmnist: {source: %s}\n"


def test_fetch_stage_writes_counts_as_metrics_and_checksums_as_results(mirror, tmp_path):
    import json

    from nnstudies import stage
    from test_kmnist import load_stage

    fetch_kmnist = load_stage("fetch_kmnist")
    (tmp_path / "params.yaml").write_text(STAGE_PARAMS % mirror)
    stage.run("fetch_kmnist", "kmnist", fetch_kmnist.PARAMS, fetch_kmnist.produce, root=tmp_path)
    metrics = json.loads((tmp_path / "metrics/fetch_kmnist.json").read_text())
    assert metrics == {"train_images": 8000, "test_images": 1000}
    results = json.loads((tmp_path / "results/fetch_kmnist.json").read_text())
    assert results["source"] == str(mirror) and results["test_images"] == 1000
    assert {f["name"]: f["md5"] for f in results["files"]} == _sums(mirror)
    assert kmnist.md5s(tmp_path / "data/kmnist") == _sums(mirror)


def test_official_source_offline_fails_fast_with_hint(tmp_path):
    from nnstudies import stage
    from test_kmnist import load_stage

    fetch_kmnist = load_stage("fetch_kmnist")
    (tmp_path / "params.yaml").write_text(STAGE_PARAMS % "official")
    try:
        stage.run("fetch_kmnist", "kmnist", fetch_kmnist.PARAMS, fetch_kmnist.produce, root=tmp_path)
    except kmnist.DataError as exc:
        assert "-S kmnist.source=data/samples/kmnist-holdout" in str(exc)
        assert not (tmp_path / "metrics").exists()
    else:
        pytest.skip("this machine reaches the official KMNIST server")
