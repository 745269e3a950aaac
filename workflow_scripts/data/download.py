"""Downloads pinned by sha256: fetched once into ``resources/downloads/``, verified, then kept.

A download streams into a temporary file beside its final name, hashing as it
goes; only a file whose digest matches the config is renamed into place, so a
file under a final name is always a verified one and is never fetched again.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from workflow_scripts.io import atomic_path
from workflow_scripts.plan.inputs import check_sha256

_BLOCK = 1 << 20


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
