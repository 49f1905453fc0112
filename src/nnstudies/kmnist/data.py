"""KMNIST: fetch the four official gz files (md5-verified) and load them as tensors.

The official file names, checksums and server come from torchvision's KMNIST dataset
class, so there is one source of truth for them.  A mirror (a directory, or an http(s)
URL) must hold the same four file names plus an ``MD5SUMS`` file; verification is never
skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from nnstudies.atomic import atomic_path
from nnstudies.errors import UserError
from nnstudies.outputs import Outputs
from nnstudies.retry import retry

OFFICIAL = "official"
CLASS_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
MEAN, STD = 0.5, 0.5  # the course's Normalize((0.5,), (0.5,)): pixels end up in [-1, 1]
SAMPLE = "data/samples/kmnist-holdout"
OFFLINE_HINT = f"to run offline use the bundled real sample: dvc exp run -S kmnist.source={SAMPLE}"


class DataError(UserError):
    """A data source or file that cannot be used."""


# The four files of every source, in the official download's names.
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def official_files() -> dict[str, str]:
    from torchvision.datasets import KMNIST

    return dict(KMNIST.resources)


def official_url() -> str:
    from torchvision.datasets import KMNIST

    return KMNIST.mirrors[0]


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Sources: where the files and their checksums come from.


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# What one download may take.  The largest real file, train images, is about 18 MB gzipped
# (47 MB unpacked); 64 MiB leaves a wide margin and still stops a mirror that streams
# without end long before memory runs out.
MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Limits:
    """How long and how much one file's download may take (tests shrink them)."""

    retries: int = 3  # tries for a transient failure: a refused or reset connection, a 5xx
    timeout: float = 10  # seconds of silence (connect, first byte, between bytes)
    # The socket timeout restarts with every byte, so a trickle never trips it.  The overall
    # deadline grows with what arrived: `grace` seconds plus the bytes so far at `min_rate`.
    # A working slow link (20 kB/s brings the largest file in 15 min) never trips it; a
    # trickle fails after `grace`; a whole file at the cap is bounded by 30 s + 56 min.
    grace: float = 30
    min_rate: float = 20_000  # bytes per second
    max_bytes: int = MAX_BYTES


def _timed_out(exc: Exception) -> bool:
    return isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError)


def _download(url: str, where: str, limits: Limits) -> bytes:
    """One try: the body of ``url``, within the limits (DataError when over them)."""
    with urllib.request.urlopen(url, timeout=limits.timeout) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limits.max_bytes:
            raise DataError(f"{where}: {url} is {int(declared)} bytes, over the "
                            f"{limits.max_bytes} a KMNIST file can be; {OFFLINE_HINT}")
        body, start = bytearray(), time.monotonic()
        while chunk := response.read1(1 << 16):  # one socket read: returns what has arrived
            body += chunk
            if len(body) > limits.max_bytes:
                raise DataError(f"{where}: {url} sent more than {limits.max_bytes} bytes, more "
                                f"than a KMNIST file can be; {OFFLINE_HINT}")
            elapsed = time.monotonic() - start
            if elapsed > limits.grace + len(body) / limits.min_rate:
                raise DataError(f"{where}: {url} sent only {len(body)} bytes in {elapsed:.0f} s "
                                f"(under {limits.min_rate:g} bytes/s); {OFFLINE_HINT}")
        if response.length:  # the server closed before the length it announced: retried
            raise ConnectionError(f"connection closed after {len(body)} of {declared} bytes")
    return bytes(body)


def _read_source(source: str, name: str, limits: Limits) -> bytes:
    """The bytes of ``name`` from a directory or URL source (URLs are retried)."""
    where = f"kmnist.source={source}"
    if not _is_url(source):
        path = Path(source) / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{where}: cannot read {path} ({exc.strerror})") from None
    url = source.rstrip("/") + "/" + name

    def transient(exc: Exception) -> bool:
        """Worth another try.  Not a 404 (a missing file stays missing), not a timeout (a
        server that accepted and stayed silent for `timeout` s stays silent: each try would
        add as much again)."""
        if isinstance(exc, urllib.error.HTTPError):
            return exc.code >= 500 or exc.code in (408, 429)
        return isinstance(exc, OSError) and not _timed_out(exc)

    try:
        return retry(_download, url, where, limits, attempts=limits.retries, delay=0.5,
                     when=transient)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise DataError(f"{where}: {url} not found (HTTP 404)") from None
        last = f"HTTP {exc.code}"
    except OSError as exc:  # URLError, timeouts, resets
        if _timed_out(exc):
            raise DataError(f"{where}: {url} sent nothing for {limits.timeout:g} s (not "
                            f"retried: a silent server stays silent); {OFFLINE_HINT}") from None
        last = str(getattr(exc, "reason", exc))
    except http.client.HTTPException as exc:  # a server that does not speak HTTP (not retried)
        raise DataError(f"{where}: {url} did not answer in HTTP ({type(exc).__name__}); "
                        f"{OFFLINE_HINT}") from None
    raise DataError(f"{where}: cannot download {url} after {limits.retries} tries "
                    f"({last}); {OFFLINE_HINT}")


def parse_md5sums(text: str, where: str) -> dict[str, str]:
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 32:
            raise DataError(f"{where}: line {number} is not '<md5>  <file name>': {line.strip()!r}")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def expected_checksums(source: str, limits: Limits = Limits()) -> dict[str, str]:
    """File name -> md5 for the source: torchvision's table, or the mirror's MD5SUMS."""
    if source == OFFICIAL:
        return official_files()
    where = source.rstrip("/") + "/MD5SUMS"
    sums = parse_md5sums(_read_source(source, "MD5SUMS", limits).decode(
        "utf-8", "replace"), where)
    missing = [name for name in FILES if name not in sums]
    if missing:
        raise DataError(f"{where}: has no checksum for {missing[0]} (a mirror must list all four files)")
    return {name: sums[name] for name in FILES}


@dataclass
class Fetched:
    name: str
    md5: str
    size: int
    reused: bool
    items: int  # images or labels in the file


# IDX (the MNIST file format): magic 0x0000 08 <dims>, then one big-endian uint32 per dim.
_IDX_DIMS = {"images-idx3": 3, "labels-idx1": 1}
CLASSES = len(CLASS_NAMES)


def parse_idx(gz_bytes: bytes, name: str):
    """The uint8 array inside a gzipped IDX file, checked: magic, dims, size, and for labels
    the range 0..9 (a label out of range would crash training after an epoch)."""
    import numpy as np

    kind = next((k for k in _IDX_DIMS if k in name), None)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(gz_bytes)) as f:  # at most the cap: a small
            raw = f.read(MAX_BYTES + 1)                          # gzip can unpack to terabytes
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, truncated, corrupt stream
        raise DataError(f"{name}: not a whole gzip file ({exc or 'truncated'})") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{name}: unpacks to more than {MAX_BYTES} bytes, more than a KMNIST "
                        "file can be")
    dims = _IDX_DIMS[kind] if kind else None
    if dims is None or len(raw) < 4 + 4 * dims or raw[:4] != bytes([0, 0, 8, dims]):
        raise DataError(f"{name}: not an MNIST-format (IDX) {kind or 'images/labels'} file "
                        "(wrong magic number)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    body = raw[4 + 4 * dims:]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"{name}: header says {shape} but holds {len(body)} bytes (truncated?)")
    if dims == 3 and shape[1:] != (28, 28):
        raise DataError(f"{name}: images are {shape[1]}x{shape[2]}, expected 28x28")
    array = np.frombuffer(body, dtype=np.uint8).reshape(shape)
    if dims == 1 and len(array) and int(array.max()) >= CLASSES:
        raise DataError(f"{name}: label {int(array.max())} is out of range (allowed 0..{CLASSES - 1})")
    return array


def _check_pairs(arrays: dict, where: str) -> None:
    for prefix in ("train", "t10k"):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte.gz"], arrays[f"{prefix}-labels-idx1-ubyte.gz"]
        if len(images) != len(labels):
            raise DataError(f"{where}: {prefix} has {len(images)} images but {len(labels)} labels")


def fetch(source: str, out_dir: str | Path, limits: Limits = Limits()) -> list[Fetched]:
    """Put the four verified files in ``out_dir``.

    A file already there with the expected md5 is kept as it is.  Every new file is read
    into memory, its md5 and its content (IDX format, shapes, label range, images and labels
    paired) are checked for all four files first, and only then are they renamed into place:
    a bad source never replaces anything, not even one file of the previous good copy.
    """
    out_dir = Path(out_dir)
    base = official_url() if source == OFFICIAL else source
    if not _is_url(base) and not Path(base).is_dir():
        raise DataError(f"kmnist.source={source}: no such directory (allowed: 'official', a "
                        "directory or an http(s) URL holding the four gz files and MD5SUMS)")
    sums = expected_checksums(source, limits)
    kept, new, arrays = {}, {}, {}
    for name, expected in sums.items():
        target = out_dir / name
        if target.exists() and md5sum(target) == expected:
            kept[name] = target.read_bytes()
            continue
        data = _read_source(base, name, limits)
        actual = hashlib.md5(data).hexdigest()
        if actual != expected:
            raise DataError(f"kmnist.source={source}: {name} has md5 {actual}, expected {expected} "
                            f"({len(data)} bytes: corrupt or truncated); nothing was replaced")
        new[name] = data
    for name, data in {**kept, **new}.items():
        try:
            arrays[name] = parse_idx(data, name)
        except DataError as exc:
            raise DataError(f"kmnist.source={source}: {exc}; nothing was replaced") from None
    _check_pairs(arrays, f"kmnist.source={source}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in new.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(data)
    return [Fetched(name, sums[name], len(data), name in kept, len(arrays[name])) for name, data in
            ((n, kept.get(n, new.get(n))) for n in sums)]


# ---------------------------------------------------------------------------
# Loading.


def load_split(data_dir: str | Path, train: bool):
    """(images, labels): images normalised to [-1, 1] as float32 (N, 1, 28, 28), labels int64."""
    import torch

    prefix = "train" if train else "t10k"
    arrays = {}
    for kind in _IDX_DIMS:
        gz = Path(data_dir) / f"{prefix}-{kind}-ubyte.gz"
        try:
            arrays[kind] = parse_idx(gz.read_bytes(), gz.name)
        except OSError as exc:
            raise DataError(f"{gz}: cannot read it ({exc.strerror}); restore it: "
                            "dvc repro -f fetch_kmnist") from None
        except DataError as exc:
            reason = str(exc).split(": ", 1)[1]
            raise DataError(f"{gz}: not a readable MNIST-format gz file ({reason}); "
                            "restore it: dvc repro -f fetch_kmnist") from None
    images, labels = arrays["images-idx3"], arrays["labels-idx1"]
    if len(images) != len(labels):
        raise DataError(f"{data_dir}: {prefix} has {len(images)} images but {len(labels)} labels; "
                        "restore it: dvc repro -f fetch_kmnist")
    images = (torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0) - MEAN) / STD
    return images.contiguous(), torch.from_numpy(labels.astype("int64"))


def stage(source: str, out_dir: str | Path) -> Outputs:
    """The fetch stage: the four verified files in ``out_dir``; the image counts are metrics
    (gated), where they came from and their checksums are results, and a figure shows the
    first training images of every class."""
    from nnstudies.kmnist import plots

    fetched = {f.name: f for f in fetch(source, out_dir)}
    for f in fetched.values():  # what the terminal shows of the stage
        print(f"{'kept' if f.reused else 'fetched'} {f.name}  {f.size} bytes  md5 {f.md5}", flush=True)
    counts = {"train_images": fetched[FILES[0]].items, "test_images": fetched[FILES[2]].items}
    files = [{"name": f.name, "md5": f.md5, "bytes": f.size, "items": f.items}
             for f in fetched.values()]
    images = parse_idx((Path(out_dir) / FILES[0]).read_bytes(), FILES[0])
    labels = parse_idx((Path(out_dir) / FILES[1]).read_bytes(), FILES[1])
    figure = plots.class_examples(images, labels, CLASS_NAMES, f"KMNIST from {source}: "
                                  "the first training images of each class")
    return Outputs(metrics=counts, results={"source": source, **counts, "files": files,
                                            "figures": {"classes": "classes.png"}},
                   files={"classes.png": figure},
                   params={"data": {"md5": {f.name: f.md5 for f in fetched.values()}}})


def md5s(data_dir: str | Path) -> dict[str, str]:
    """File name -> md5 of the four files in ``data_dir``: which data a training run read."""
    return {name: md5sum(Path(data_dir) / name) for name in FILES}
