"""Documents from a table's text column, read through ``datasets``: local files or the hub.

Local parquet/jsonl/arrow/csv files and hub datasets take the same path:
``datasets.load_dataset`` gives a (possibly streamed) table, and ``_join``
turns its text column into one string, one document after another, each
ending in a newline. So tests on local parquet files exercise the hub path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workflow_scripts.data.download import sha256_file

_BATCH_ROWS = 1024


def read_files(spec: dict, paths: list[Path], builder: str) -> tuple[str, dict[str, Any]]:
    """The documents of local table files, all of them one corpus."""
    if builder == "parquet" and _parquet_rows(paths) == 0:
        # datasets 5.2 fails on zero-row parquet files with an unrelated Arrow error.
        raise ValueError(
            f"dataset path = {spec.get('path')!r}: the parquet files hold no rows: expected text"
        )
    dataset = _load(builder, data_files=[str(p) for p in paths], split="train", streaming=_streaming(spec))
    return _join(dataset, spec, where=f"dataset path = {spec.get('path')!r}")


def read_hub(spec: dict) -> tuple[dict[str, str], dict[str, Any]]:
    """The source splits named in ``hf.splits`` (train at least) of a pinned hub dataset."""
    hf, names = hub_splits(spec)
    texts, counts = {}, {}
    for split, source_split in names.items():
        if not source_split:
            continue  # cut from train by fraction
        dataset = load_hub_split(spec, source_split, f"text_column: {spec.get('text_column', 'text')!r}")
        texts[split], counts[split] = _join(
            dataset, spec, where=f"dataset hf {hf['id']!r} split {source_split!r}"
        )
    return texts, {"hf": {**hf, "splits": names}, "read": counts}


def hub_splits(spec: dict) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``hf`` block with defaults, and the source split read as each of train, val, test
    (empty: cut from train by fraction); refuses an unpinned dataset."""
    hf = {"name": None, "splits": {}, **spec.get("hf", {})}
    repo, revision = hf.get("id", ""), hf.get("revision", "")
    if not repo or not revision:
        raise ValueError(
            f"dataset hf = {{id: {repo!r}, revision: {revision!r}}}: expected a dataset id and a pinned "
            "revision (commit hash or tag)"
        )
    return hf, {"train": "train", **hf["splits"]}


def load_hub_split(spec: dict, source_split: str, column_hint: str):
    """One split of the pinned hub dataset (a ``datasets.Dataset``); an unreachable hub is one
    line saying how to read the same files locally (``column_hint``: the column key to keep)."""
    hf, _ = hub_splits(spec)
    try:
        return _load(
            hf["id"], hf["name"] or None, revision=hf["revision"], split=source_split,
            streaming=_streaming(spec),
        )
    except ConnectionError as error:
        raise ConnectionError(
            f"dataset hf.id = {hf['id']!r}: the Hugging Face hub cannot be reached ({_first_line(error)}); "
            f"fetch the files where it can and point the same dataset at them: source: local, "
            f"path: <folder>/*.parquet, {column_hint}"
        ) from None


def load_files(paths: list[Path], builder: str, streaming: bool = False):
    """Local table files as one ``datasets`` table (split train); one line if it has no rows."""
    if builder == "parquet" and _parquet_rows(paths) == 0:
        # datasets 5.2 fails on zero-row parquet files with an unrelated Arrow error.
        raise ValueError(f"dataset path = {[str(p) for p in paths]}: the parquet files hold no rows")
    return _load(builder, data_files=[str(p) for p in paths], split="train", streaming=streaming)


def _parquet_rows(paths: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def _streaming(spec: dict) -> bool:
    return bool(spec.get("streaming", False))


def _load(path: str, *args: Any, **kwargs: Any):
    import datasets  # ≈ 1 s to import: only the sources that need it pay for it

    datasets.disable_progress_bars()  # progress bars would flood the job's log
    try:
        return datasets.load_dataset(path, *args, **kwargs)
    except ConnectionError:
        raise
    except Exception as error:
        from huggingface_hub.errors import LocalEntryNotFoundError

        if isinstance(error, LocalEntryNotFoundError):
            raise ConnectionError(_first_line(error)) from None
        cause = error
        while cause.__cause__ is not None or cause.__context__ is not None:  # the root says what was wrong
            cause = cause.__cause__ or cause.__context__
        raise ValueError(f"dataset {path!r}: {type(cause).__name__}: {_first_line(cause)}") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _join(dataset, spec: dict, where: str) -> tuple[str, dict[str, Any]]:
    """The text column's documents joined, each ending in a newline, up to ``max_chars``."""
    column = spec.get("text_column", "text")
    cap = int(spec.get("max_chars", 0) or 0)
    columns = dataset.column_names
    if columns is None:  # a streamed table may not know its columns before its first row
        columns = list(next(iter(dataset), {}))
    if columns and column not in columns:
        raise ValueError(f"{where}: text_column {column!r} is absent: expected one of {list(columns)}")
    parts: list[str] = []
    n_chars = n_rows = 0
    truncated = False
    for batch in dataset.select_columns([column]).iter(batch_size=_BATCH_ROWS):
        for value in batch[column]:
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise ValueError(
                    f"{where}: text_column {column!r} holds {type(value).__name__} values: expected text"
                )
            if not value.endswith("\n"):
                value += "\n"  # one document per line run; no document runs into the next
            parts.append(value)
            n_chars += len(value)
            n_rows += 1
            if cap and n_chars >= cap:  # the document reaching the cap is kept whole
                truncated = True
                break
        if truncated:
            break
    if not parts:
        raise ValueError(f"{where}: text_column {column!r} holds no text: expected at least one document")
    return "".join(parts), {"rows": n_rows, "n_chars": n_chars, "truncated_at_max_chars": truncated}


def describe_files(paths: list[Path]) -> list[dict[str, Any]]:
    return [{"path": os.fspath(p), "size_bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths]
