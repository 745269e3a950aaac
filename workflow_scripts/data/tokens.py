"""Token files, the data stage's contract: flat little-endian ids read with ``numpy.memmap``.

``tokenize_split`` writes ``<split>.bin`` (uint16 when the vocabulary fits in
65,536 ids, else uint32) and a ``<split>.json`` meta beside it; ``open_tokens``
maps the file read-only without loading it.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from workflow_scripts.data import optimal
from workflow_scripts.data.download import sha256_file
from workflow_scripts.io import atomic_path, atomic_write_json, provenance, read_json
from workflow_scripts.data.tokenizer import UNK, load_tokenizer

FORMAT_VERSION = 1
# Chunks encoded per encode_batch call: enough to keep every core busy.
_BATCH = 2 * (os.cpu_count() or 1)


def token_dtype(vocab_size: int) -> np.dtype:
    """Little-endian uint16 if every id fits, else uint32."""
    if vocab_size <= 1 << 16:
        return np.dtype("<u2")
    if vocab_size <= 1 << 32:
        return np.dtype("<u4")
    raise ValueError(f"vocab_size = {vocab_size}: expected at most 2**32 ids for a uint32 token file")


def id_bound(tokenizer) -> int:
    """One more than the largest id: the vocabulary a model needs (a pretrained
    tokenizer's added tokens may leave gaps, so the count alone can be short)."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return max(vocab.values(), default=-1) + 1


def _safe_after_newline(text: str, i: int) -> bool:
    # Cut just after a lone "\n" between non-whitespace characters: GPT-2's
    # byte-level regex ends a pre-token there whether or not the text goes on.
    # After a whitespace run it would not (" \nX" -> " ", "\n" but a chunk
    # ending in " \n" -> " \n"); a character-level split allows any cut.
    return 2 <= i < len(text) and text[i - 1] == "\n" and not text[i - 2].isspace() and not text[i].isspace()


def _safe_before_space(text: str, i: int) -> bool:
    # Fallback for text without such newlines (CRLF files, one long line): cut
    # before a lone " " between non-whitespace; " X" starts a pre-token either way.
    return (
        1 <= i < len(text) - 1 and text[i] == " " and not text[i - 1].isspace() and not text[i + 1].isspace()
    )


def _find_cut(text: str, target: int) -> int | None:
    """A safe cut: the last in text[target // 2 : target], else the first after; None if none."""
    low = target // 2
    for char, offset, safe in (("\n", 1, _safe_after_newline), (" ", 0, _safe_before_space)):
        i = text.rfind(char, low, target)
        while i != -1:
            if safe(text, i + offset):
                return i + offset
            i = text.rfind(char, low, i)
        i = text.find(char, target)
        while i != -1:
            if safe(text, i + offset):
                return i + offset
            i = text.find(char, i + 1)
    return None


def _chunks(path: str | os.PathLike, chunk_chars: int) -> Iterator[str]:
    """The file's text in pieces of about ``chunk_chars``, cut only where tokenization allows.

    Concatenating the pieces' token ids gives the ids of the whole text.
    """
    pending = ""
    with open(path, encoding="utf-8", newline="") as f:
        while True:
            block = f.read(chunk_chars)
            pending += block
            # Cut only with a full chunk buffered (a cut needs the character after it).
            while len(pending) > chunk_chars:
                cut = _find_cut(pending, chunk_chars)
                if cut is None:
                    break  # no safe cut yet: read more
                yield pending[:cut]
                pending = pending[cut:]
            if not block:
                break
    if pending:
        yield pending


def tokenize_split(
    tokenizer_path: str | os.PathLike,
    text_path: str | os.PathLike,
    out_bin: str | os.PathLike,
    out_meta: str | os.PathLike,
    source_meta: dict | None = None,
    split: str = "",
    chunk_chars: int = 1 << 16,
) -> dict:
    """Encode one text split into a flat token file plus its meta JSON; return the meta.

    ``chunk_chars``: 64k-character chunks encoded 2 per core per batch ran 3x
    faster than 1M-character ones on tinyshakespeare (tokenizers 0.23, 2 cores).
    """
    if int(chunk_chars) != chunk_chars or chunk_chars < 1:
        raise ValueError(f"chunk_chars = {chunk_chars!r}: expected an integer >= 1")
    if not Path(text_path).is_file():
        raise FileNotFoundError(f"text {os.fspath(text_path)!r}: no such file")
    tokenizer = load_tokenizer(tokenizer_path)
    vocab_size = id_bound(tokenizer)
    dtype = token_dtype(vocab_size)
    unk_id = tokenizer.token_to_id(UNK)
    digest = hashlib.sha256()
    n_tokens = n_chars = n_unk = 0

    def write(batch: list[str], out) -> None:
        nonlocal n_tokens, n_chars, n_unk
        # add_special_tokens=False: the file holds the text's tokens and nothing else.
        # encode_batch_fast skips the character offsets we never read: 1.3-1.5x
        # faster than encode_batch for byte-level BPE (tokenizers 0.23, 2 cores).
        for encoding in tokenizer.encode_batch_fast(batch, add_special_tokens=False):
            ids = np.asarray(encoding.ids, dtype=dtype)
            data = ids.tobytes()
            out.write(data)
            digest.update(data)
            n_tokens += ids.size
            if unk_id is not None:
                n_unk += int(np.count_nonzero(ids == unk_id))
        n_chars += sum(len(chunk) for chunk in batch)

    with atomic_path(out_bin, suffix=".bin") as tmp, open(tmp, "wb") as out:
        batch: list[str] = []
        for chunk in _chunks(text_path, int(chunk_chars)):
            batch.append(chunk)
            if len(batch) == _BATCH:
                write(batch, out)
                batch = []
        if batch:
            write(batch, out)
        out.flush()
        if n_chars == 0:
            raise ValueError(f"text {os.fspath(text_path)!r} is empty: expected at least one character")

    source = {k: v for k, v in (source_meta or {}).items() if k != "provenance"}
    meta = {
        "format_version": FORMAT_VERSION,
        "split": split,
        "n_tokens": n_tokens,
        "n_chars": n_chars,
        "vocab_size": vocab_size,
        "dtype": "uint16" if dtype.itemsize == 2 else "uint32",
        "byteorder": "little",
        "sha256": digest.hexdigest(),
        "n_unk": n_unk,
        "tokenizer": {"path": os.fspath(tokenizer_path), "sha256": sha256_file(tokenizer_path)},
        "source": source,
        "optimal_loss_per_token": optimal.per_token(source, split, n_tokens, n_unk),
        "symbols_of_tokens": optimal.symbols_of_tokens(source, tokenizer.get_vocab(), n_unk),
        "provenance": provenance(),
    }
    atomic_write_json(out_meta, meta)
    return meta


def open_tokens(bin_path: str | os.PathLike, meta_path: str | os.PathLike | None = None,
                verify: bool = True) -> np.memmap:
    """The token file mapped read-only (never loaded whole), dtype and length from its meta.

    With ``verify`` its content is first checked against the meta (``verify_tokens``), once per
    file per process: a file changed in place since it was tokenized fails here, in one line.
    """
    bin_path = Path(bin_path)
    meta_path = Path(meta_path) if meta_path is not None else bin_path.with_suffix(".json")
    if not bin_path.is_file():
        raise FileNotFoundError(f"token file {str(bin_path)!r}: no such file")
    if not meta_path.is_file():
        raise FileNotFoundError(f"token meta {str(meta_path)!r}: no such file")
    meta = read_json(meta_path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"token meta format_version = {meta.get('format_version')!r}: expected {FORMAT_VERSION}"
        )
    if meta.get("dtype") not in ("uint16", "uint32") or meta.get("byteorder") != "little":
        raise ValueError(
            f"token meta dtype/byteorder = {meta.get('dtype')!r}/{meta.get('byteorder')!r}: "
            "expected uint16 or uint32, little"
        )
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    n_tokens = int(meta["n_tokens"])
    size = bin_path.stat().st_size
    if size != n_tokens * dtype.itemsize:
        raise ValueError(
            f"token file {str(bin_path)!r} has {size} bytes: "
            f"expected {n_tokens} × {dtype.itemsize} from its meta"
        )
    if verify:
        verify_tokens(bin_path, meta)
    return np.memmap(bin_path, dtype=dtype, mode="r", shape=(n_tokens,))


# Files verified by this process, by (path, inode, size, mtime): what verify_tokens found.
_VERIFIED: dict[tuple, dict] = {}
_VERIFY_CHUNK = 16 << 20  # bytes read per step: large enough that hashing, not Python, is the cost


def verify_tokens(bin_path: str | os.PathLike, meta: dict, cached: bool = True) -> dict:
    """Check a token file's content against its meta: the SHA-256 of every byte, and every id
    below the meta's vocabulary (an id past it would index outside the embedding).

    Raises ValueError with one line naming the file and what differs. Returns what was verified
    (for the provenance of a cell), computed once per file per process at about the speed of
    SHA-256 alone (benchmarks/token_verify_speed.py). ``cached=False`` checks the file again.
    """
    path = Path(bin_path)
    stat = path.stat()
    key = (os.fspath(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if cached and key in _VERIFIED:
        return _VERIFIED[key]
    started = time.perf_counter()
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    digest, largest = hashlib.sha256(), -1
    buffers = [bytearray(min(_VERIFY_CHUNK, max(stat.st_size, 1))) for _ in range(2)]
    # The next chunk is read in a second thread while this one is hashed and its largest id found:
    # file reads, hashlib's update and numpy's max all release the GIL.
    with open(path, "rb", buffering=0) as f, ThreadPoolExecutor(1) as pool:
        pending, i = pool.submit(f.readinto, buffers[0]), 0
        while count := pending.result():
            view = memoryview(buffers[i % 2])[:count]
            pending = pool.submit(f.readinto, buffers[(i + 1) % 2])
            digest.update(view)
            largest = max(largest, _max_id(np.frombuffer(view[: count - count % dtype.itemsize], dtype=dtype)))
            i += 1
    vocab = int(meta["vocab_size"])
    if largest >= vocab:
        raise ValueError(f"token file {os.fspath(path)!r} holds id {largest}, outside the vocabulary of "
                         f"{vocab} in its meta: the file is corrupt; delete it and its .json to tokenize again")
    found = digest.hexdigest()
    if found != meta.get("sha256"):
        raise ValueError(f"token file {os.fspath(path)!r} has sha256 {found}, its meta {meta.get('sha256')}: "
                         "it changed after tokenization; delete it and its .json to tokenize again")
    seconds = time.perf_counter() - started
    _VERIFIED[key] = {"path": os.fspath(path), "bytes": stat.st_size, "sha256": found, "max_id": largest,
                      "vocab_size": vocab, "seconds": round(seconds, 4)}
    return _VERIFIED[key]


def _max_id(ids: np.ndarray) -> int:
    return int(ids.max()) if ids.size else -1


def verified_tokens() -> list[dict]:
    """What verify_tokens checked in this process, one record per file, for a cell's provenance."""
    return list(_VERIFIED.values())
