"""KMNIST: fetch the four official gz files (md5-verified) and load them as tensors.

The official file names, checksums and server come from torchvision's KMNIST dataset
class, so there is one source of truth for them.  A mirror (a directory, or an http(s)
URL) must hold the same four file names plus an ``MD5SUMS`` file; verification is never
skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nnstudies.atomic import atomic_path
from nnstudies.errors import UserError

OFFICIAL = "official"
CLASS_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
MEAN, STD = 0.5, 0.5  # the course's Normalize((0.5,), (0.5,)): pixels end up in [-1, 1]
SAMPLE = "data/samples/kmnist-holdout"
OFFLINE_HINT = f"to run offline use the bundled real sample: dvc exp run -S kmnist.source={SAMPLE}"


class DataError(UserError):
    """A data source or file that cannot be used."""


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


def _read_source(source: str, name: str, *, retries: int, timeout: float) -> bytes:
    """The bytes of ``name`` from a directory or URL source (URLs are retried)."""
    if not _is_url(source):
        path = Path(source) / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"kmnist.source={source}: cannot read {path} ({exc.strerror})") from None
    url = source.rstrip("/") + "/" + name
    last = None
    for attempt in range(retries):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise DataError(f"kmnist.source={source}: {url} not found (HTTP 404)") from None
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if attempt < retries - 1:
            time.sleep(0.5 * 2 ** attempt)
    raise DataError(f"kmnist.source={source}: cannot download {url} after {retries} tries "
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


def expected_checksums(source: str, *, retries: int = 3, timeout: float = 10) -> dict[str, str]:
    """File name -> md5 for the source: torchvision's table, or the mirror's MD5SUMS."""
    if source == OFFICIAL:
        return official_files()
    where = source.rstrip("/") + "/MD5SUMS"
    sums = parse_md5sums(_read_source(source, "MD5SUMS", retries=retries, timeout=timeout).decode(
        "utf-8", "replace"), where)
    missing = [name for name in official_files() if name not in sums]
    if missing:
        raise DataError(f"{where}: has no checksum for {missing[0]} (a mirror must list all four files)")
    return {name: sums[name] for name in official_files()}


@dataclass
class Fetched:
    name: str
    md5: str
    size: int
    reused: bool


def fetch(source: str, out_dir: str | Path, *, retries: int = 3, timeout: float = 10) -> list[Fetched]:
    """Put the four verified files in ``out_dir``.

    A file already there with the expected md5 is kept as it is.  Each download goes to a
    temp file that is renamed into place only after its md5 matches, so a corrupt or
    truncated download never replaces a good copy.
    """
    out_dir = Path(out_dir)
    base = official_url() if source == OFFICIAL else source
    if not _is_url(base) and not Path(base).is_dir():
        raise DataError(f"kmnist.source={source}: no such directory (allowed: 'official', a "
                        "directory or an http(s) URL holding the four gz files and MD5SUMS)")
    sums = expected_checksums(source, retries=retries, timeout=timeout)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name, expected in sums.items():
        target = out_dir / name
        if target.exists() and md5sum(target) == expected:
            results.append(Fetched(name, expected, target.stat().st_size, True))
            continue
        data = _read_source(base, name, retries=retries, timeout=timeout)
        actual = hashlib.md5(data).hexdigest()
        if actual != expected:
            raise DataError(f"kmnist.source={source}: {name} has md5 {actual}, expected {expected} "
                            f"({len(data)} bytes: corrupt or truncated); nothing was replaced")
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        results.append(Fetched(name, expected, len(data), False))
    return results


# ---------------------------------------------------------------------------
# Loading.


def load_split(data_dir: str | Path, train: bool):
    """(images, labels): images normalised to [-1, 1] as float32 (N, 1, 28, 28), labels int64.

    Uses torchvision's MNIST-format readers (they take an uncompressed file, so each gz is
    inflated into a temp folder first).
    """
    from torchvision.datasets.mnist import read_image_file, read_label_file

    prefix = "train" if train else "t10k"
    data_dir = Path(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        raw = {}
        for kind in ("images-idx3", "labels-idx1"):
            gz = data_dir / f"{prefix}-{kind}-ubyte.gz"
            plain = Path(tmp) / gz.stem
            try:
                with gzip.open(gz, "rb") as src, open(plain, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                raw[kind] = (read_image_file if kind.startswith("images") else read_label_file)(str(plain))
            except (OSError, EOFError, AssertionError, RuntimeError, ValueError) as exc:
                raise DataError(f"{gz}: not a readable MNIST-format gz file ({exc or type(exc).__name__}); "
                                "run the fetch_kmnist stage again") from None
    images, labels = raw["images-idx3"], raw["labels-idx1"]
    if len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise DataError(f"{data_dir}: {prefix} images {tuple(images.shape)} do not match labels "
                        f"{tuple(labels.shape)} (expected N x 28 x 28 and N)")
    images = (images.unsqueeze(1).float().div_(255.0) - MEAN) / STD
    return images.contiguous(), labels.long()
