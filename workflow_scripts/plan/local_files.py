"""The files a config names, resolved and checked before any job: local data files and tokenizer files.

The one definition of how a ``source: local`` path (a file, a glob, or a list
of them) becomes files and of which extensions are tables; the data stage
(workflow_scripts.data.sources, .structured, .samples_images) reads what this
resolves. Validation (workflow_scripts.plan.config) asks ``local_files_problem``
and ``tokenizer_file_problem`` so that a dry run already stops on a missing,
empty or undecodable file.
"""

from __future__ import annotations

import codecs
import glob
import os
from pathlib import Path

# Extensions read as tables; any other file is read as plain UTF-8 text.
BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow", ".csv": "csv"}
FORMATS = ("auto", "text", "parquet", "json", "arrow", "csv")
TEXT_ENCODING = "utf-8"
# Text decoded at validation, over all of a dataset's files: all of a small corpus, the start of each file
# of a big one (at least 64 KiB each); the preparation step decodes every byte and names the offset of a
# bad one. Validation runs at every Snakemake start, so it reads a bounded amount.
DECODE_CHECK_BYTES = 32 << 20
DECODE_CHECK_MIN_BYTES = 64 << 10


def resolve_paths(path: str | list[str]) -> list[Path]:
    """The files of a local dataset's ``path``, sorted; one line for a pattern that matches no file."""
    patterns = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not patterns or any(not str(p) for p in patterns):
        raise ValueError(f"dataset path = {path!r}: expected a file, a glob, or a list of them")
    found: set[str] = set()
    for pattern in patterns:
        matches = [m for m in glob.glob(os.fspath(pattern)) if os.path.isfile(m)]
        if not matches:
            what = "is a directory" if os.path.isdir(pattern) else "no such file (or the glob matched none)"
            raise FileNotFoundError(f"dataset path {os.fspath(pattern)!r}: {what}; expected a file or a glob "
                                    "of files (e.g. data/*.txt)")
        found.update(matches)
    return [Path(p) for p in sorted(found)]


def file_format(paths: list[Path], fmt: str = "auto") -> str:
    """``text`` or the ``datasets`` builder that reads ``paths``; ``auto`` goes by extension."""
    if fmt not in FORMATS:
        raise ValueError(f"dataset format = {fmt!r}: expected one of {list(FORMATS)}")
    if fmt != "auto":
        return fmt
    kinds = {BUILDERS.get(p.suffix.lower(), "text") for p in paths}
    if len(kinds) > 1:
        raise ValueError(
            f"dataset path: files of formats {sorted(kinds)} mixed: expected one format (or set format)"
        )
    return kinds.pop()


def undecodable(path: Path, limit: int = DECODE_CHECK_BYTES) -> str | None:
    """Where the first ``limit`` bytes of ``path`` stop being UTF-8 text, or None."""
    decoder = codecs.getincrementaldecoder(TEXT_ENCODING)()
    with open(path, "rb") as f:
        data = f.read(limit)
        at_end = not f.read(1)
    try:
        decoder.decode(data, final=at_end)  # a character cut at the limit is not an error
    except UnicodeDecodeError as error:
        return f"not {TEXT_ENCODING.upper()} text ({error.reason} at byte {error.start})"
    return None


def local_files_problem(spec: dict) -> str | None:
    """What is wrong with a local dataset's files (missing, a directory, empty, undecodable), or None."""
    try:
        paths = resolve_paths(spec.get("path", ""))
        fmt = file_format(paths, spec.get("format", "auto"))
    except (ValueError, OSError) as error:
        return str(error)
    budget = DECODE_CHECK_BYTES
    for path in paths:
        try:
            size = path.stat().st_size
            if size == 0:
                return f"file {str(path)!r} is empty: expected text or a table"
            limit = max(budget, DECODE_CHECK_MIN_BYTES)
            problem = undecodable(path, limit) if fmt == "text" and not spec.get("image_column") else None
            budget = max(0, budget - size)
        except OSError as error:
            return f"file {str(path)!r}: {error.strerror.lower()}"
        if problem:
            return f"file {str(path)!r}: {problem}"
    return None


def tokenizer_file_problem(path: str) -> str | None:
    """For a pretrained tokenizer given as a file (a path ending in .json): missing or empty, or None."""
    if not path.endswith(".json"):
        return None  # a hub id, fetched by the tokenizer step
    if os.path.isdir(path):
        return "is a directory: expected a tokenizer.json file"
    if not os.path.isfile(path):
        return "no such file: expected a tokenizer.json file (a path ending in .json) or a hub id"
    if os.path.getsize(path) == 0:
        return "the file is empty: expected a tokenizer.json"
    return None
