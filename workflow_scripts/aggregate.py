"""Gather every cell's metrics.json into runs.csv, one tidy row per cell.

runs.csv is the only input of the fits and figures (GUIDE §3). Run by hand or
from Snakemake as::

    python -m workflow_scripts.aggregate --out results/default/runs.csv results/default/runs/*/*/*/metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterable

import pandas as pd

from workflow_scripts.io import atomic_path, read_json

REQUIRED_KEYS = ("experiment", "model", "data", "seed", "status", "N", "N_nonembedding", "D", "C", "val_loss")
# Stored whole as one JSON string: the resolved config is big and only read back as a record.
JSON_COLUMNS = ("provenance.config",)
SORT_KEYS = ["experiment", "N", "D", "seed"]


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def flatten(record: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts become "a.b" columns; lists and ``provenance.config`` become JSON strings."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if name in JSON_COLUMNS or isinstance(value, (list, tuple)):
            flat[name] = _compact(value)
        elif isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def collect_runs(metrics_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per cell from metrics.json files, sorted by experiment, N, D, seed."""
    rows, seen = [], {}
    for path in map(str, metrics_paths):
        try:
            record = read_json(path)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise ValueError(f"{path}: metrics lack required key(s) {', '.join(missing)}")
        # Two files for one cell would be counted twice by the bootstrap.
        cell = tuple(str(record[k]) for k in ("experiment", "model", "data", "seed"))
        if cell in seen:
            raise ValueError(f"{path}: cell {'/'.join(cell)} already read from {seen[cell]}")
        seen[cell] = path
        rows.append(flatten(record))
    if not rows:
        raise ValueError("no metrics.json files given")
    runs = pd.DataFrame(rows)
    return runs.sort_values(SORT_KEYS, kind="stable", ignore_index=True)


def write_runs(metrics_paths: Iterable[str | os.PathLike], out_csv: str | os.PathLike) -> pd.DataFrame:
    """Collect the cells and write runs.csv atomically."""
    runs = collect_runs(metrics_paths)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        runs.to_csv(tmp, index=False)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write runs.csv")
    parser.add_argument("metrics", nargs="+", help="metrics.json files, one per cell")
    args = parser.parse_args(argv)
    try:
        runs = write_runs(args.metrics, args.out)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    counts = runs["status"].value_counts().to_dict()
    print(f"{len(runs)} cells -> {args.out} ({', '.join(f'{k}: {v}' for k, v in counts.items())})")


if __name__ == "__main__":
    main()
