"""Downloads pinned by sha256: fetched once into ``resources/downloads/``, verified, then kept.

A download streams into a temporary file beside its final name, hashing as it
goes; only a file whose digest matches the config is renamed into place, so a
file under a final name is always a verified one and is never fetched again.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from workflow_scripts.io import atomic_path

DOWNLOAD_DIR = Path("resources/downloads")
# The digest prefix in the file name keeps two URLs with the same basename apart
# and lets the Snakemake rule find the URL from the path alone.
PREFIX_CHARS = 16
_SHA256 = re.compile(r"[0-9a-f]{64}")
_BLOCK = 1 << 20


def download_name(url: str, sha256: str) -> str:
    """``<sha256 prefix>-<url basename>``, the basename reduced to safe characters."""
    check_sha256(url, sha256)
    base = os.path.basename(urllib.parse.urlparse(url).path)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "download"
    return f"{sha256[:PREFIX_CHARS]}-{base}"


def download_path(url: str, sha256: str, folder: str | os.PathLike = DOWNLOAD_DIR) -> Path:
    return Path(folder) / download_name(url, sha256)


def check_sha256(url: str, sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"download {url}: sha256 = {sha256!r}: expected 64 lowercase hex digits")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, sha256: str, dest: str | os.PathLike, timeout: float = 60.0) -> Path:
    """``url`` saved at ``dest`` with digest ``sha256``; an already verified ``dest`` is kept as is.

    A mismatch removes the partial file and raises one line naming the URL and both digests.
    """
    check_sha256(url, sha256)
    dest = Path(dest)
    if dest.is_file():
        # Re-hashing costs a fraction of a second per 100 MB and catches a file
        # changed by hand since it was verified; such a file is fetched anew.
        if sha256_file(dest) == sha256:
            return dest
        dest.unlink()
    digest = hashlib.sha256()
    with atomic_path(dest, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                for block in iter(lambda: response.read(_BLOCK), b""):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise ConnectionError(f"download {url}: failed ({reason})") from None
        actual = digest.hexdigest()
        if actual != sha256:
            # atomic_path deletes the temporary file on the way out.
            raise ValueError(f"download {url}: sha256 mismatch: expected {sha256}, got {actual}")
    return dest
