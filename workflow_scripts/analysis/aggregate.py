"""Gather every cell's metrics.json into runs.csv, one tidy row per cell, and its learning curve.

runs.csv is the only input of the fits (GUIDE §3); its column ``D_unit`` says what D counts:
``tokens`` for language cells (metrics.json has ``flops_per_token``), ``samples`` for the
regression and classification cells of samples datasets (``flops_per_sample``), so figures
label D correctly. A swept experiment's cells (``training.sweep``) add ``setting``, its
``sweep.<key>`` values and ``selected`` (``workflow_scripts.analysis.sweep``). Beside it: curves.parquet, one row per
(cell, evaluation) read from the curve.csv next to each metrics.json, and cells_summary.csv,
the mean and spread of the final loss over the seeds of each (N, D) cell. Run by hand or
from Snakemake as::

    python -m workflow_scripts.analysis.aggregate --out results/default/runs.csv \
        [--curves results/default/curves.parquet] [--summary results/default/cells_summary.csv] \
        [--select per_cell] results/default/runs/*/*/*/metrics.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterable

import pandas as pd

from workflow_scripts.analysis import sweep
from workflow_scripts.io import atomic_path, read_json

REQUIRED_KEYS = ("experiment", "model", "data", "seed", "status", "N", "N_nonembedding", "D", "C", "val_loss")
# Stored whole as one JSON string: the resolved config is big and only read back as a record.
JSON_COLUMNS = ("provenance.config",)
SORT_KEYS = ["experiment", "N", "D", "seed"]
# The curves table's contract: the cell's identity and sizes, then curve.csv's columns.
CELL_COLUMNS = ["experiment", "model", "data", "seed", "N", "N_nonembedding", "D", "status"]
CURVE_COLUMNS = ["step", "tokens", "flops", "eval_loss", "train_loss", "lr"]
# A samples cell's curve.csv counts samples where a token cell counts tokens, and may add accuracy.
SAMPLES_CURVE_COLUMNS = ["step", "samples", "flops", "eval_loss", "train_loss", "lr"]
OPTIONAL_CURVE_COLUMNS = ["eval_accuracy", "noise_scale"]
SUMMARY_KEYS = ["experiment", "model", "data", "N", "N_nonembedding", "D"]
# A swept cell's identity adds its setting (workflow_scripts.analysis.sweep) before the seed.
SETTING = "setting"
IDENTITY = ("experiment", "model", "data", SETTING, "seed")


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


def _read_records(metrics_paths: Iterable[str | os.PathLike]) -> list[tuple[str, dict]]:
    """(path, record) of every metrics.json, checked for the required keys and repeated cells."""
    records, seen = [], {}
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
        cell = tuple(str(record[k]) for k in IDENTITY if k in record)
        if cell in seen:
            raise ValueError(f"{path}: cell {'/'.join(cell)} already read from {seen[cell]}")
        seen[cell] = path
        records.append((path, record))
    if not records:
        raise ValueError("no metrics.json files given")
    return records


def d_unit(record: dict) -> str:
    """What a cell's D counts: "samples" when its metrics give FLOPs per sample, else "tokens"."""
    return "samples" if record.get("flops_per_sample") is not None and "flops_per_token" not in record \
        else "tokens"


def _sort_keys(frame: pd.DataFrame) -> list[str]:
    return [*SORT_KEYS[:-1], SETTING, SORT_KEYS[-1]] if SETTING in frame.columns else SORT_KEYS


def collect_runs(metrics_paths: Iterable[str | os.PathLike], select: str = "per_cell") -> pd.DataFrame:
    """One row per cell from metrics.json files (plus ``D_unit``), sorted by experiment, N, D
    (setting), seed; a swept experiment's with ``selected`` by ``select`` (``analysis.sweep.select``)."""
    runs = pd.DataFrame([{**flatten(record), "D_unit": d_unit(record)}
                         for _, record in _read_records(metrics_paths)])
    runs = runs.sort_values(_sort_keys(runs), kind="stable", ignore_index=True)
    return sweep.select(runs, select) if sweep.swept(runs) else runs


def collect_curves(metrics_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per (cell, evaluation): the cell's identity and sizes, then its curve.csv.

    Each cell's curve.csv is read from beside its metrics.json; sorted like runs.csv, then by step.
    """
    tables = []
    for path, record in _read_records(metrics_paths):
        curve_path = os.path.join(os.path.dirname(path), "curve.csv")
        try:
            curve = pd.read_csv(curve_path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{curve_path}: no learning curve beside {path}") from None
        columns = SAMPLES_CURVE_COLUMNS if d_unit(record) == "samples" else CURVE_COLUMNS
        missing = [c for c in columns if c not in curve.columns]
        if missing:
            raise ValueError(f"{curve_path}: curve lacks column(s) {', '.join(missing)}")
        columns = columns + [c for c in OPTIONAL_CURVE_COLUMNS if c in curve.columns]
        curve = curve[columns].apply(pd.to_numeric, errors="coerce")
        curve = curve.astype({"step": "int64", columns[1]: "int64"})
        identity = CELL_COLUMNS + ([SETTING] if SETTING in record else [])
        tables.append(curve.assign(**{k: record[k] for k in identity})[identity + columns])
    curves = pd.concat(tables, ignore_index=True)
    return curves.sort_values([*_sort_keys(curves), "step"], kind="stable", ignore_index=True)


def summarize_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (N, D) cell: mean and std (ddof 1; NaN with one seed) of val_loss over its ``ok`` seeds.

    ``n_seeds`` counts the seeds run, ``n_ok`` those with status ``ok`` the statistics use.
    """
    ok = runs.assign(_ok=runs["status"] == "ok",
                     _loss=pd.to_numeric(runs["val_loss"], errors="coerce").where(runs["status"] == "ok"))
    keys = SUMMARY_KEYS + [c for c in (SETTING, "selected") if c in runs.columns]
    grouped = ok.groupby(keys, sort=False)
    summary = grouped.agg(n_seeds=("seed", "size"), n_ok=("_ok", "sum"), val_loss_mean=("_loss", "mean"),
                          val_loss_std=("_loss", "std"), val_loss_min=("_loss", "min"),
                          val_loss_max=("_loss", "max")).reset_index()
    return summary.sort_values(["experiment", "N", "D"], kind="stable", ignore_index=True)


def write_runs(metrics_paths: Iterable[str | os.PathLike], out_csv: str | os.PathLike,
               curves: str | os.PathLike | None = None, summary: str | os.PathLike | None = None,
               select: str = "per_cell") -> pd.DataFrame:
    """Collect the cells and write runs.csv (and the curves and summary tables if given) atomically."""
    metrics_paths = list(metrics_paths)
    runs = collect_runs(metrics_paths, select)
    table = collect_curves(metrics_paths) if curves else None
    if table is not None and "selected" in runs.columns:  # the laws' curves are the selected cells'
        table = table.merge(runs[[*IDENTITY, "selected"]], on=list(IDENTITY), how="left", sort=False)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        runs.to_csv(tmp, index=False)
    if curves:
        with atomic_path(curves, suffix=".parquet") as tmp:
            table.to_parquet(tmp, index=False)
    if summary:
        with atomic_path(summary, suffix=".csv") as tmp:
            summarize_cells(runs).to_csv(tmp, index=False)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write runs.csv")
    parser.add_argument("--curves", help="where to write curves.parquet (every cell's learning curve)")
    parser.add_argument("--summary", help="where to write cells_summary.csv (mean and std over seeds)")
    parser.add_argument("--select", default="per_cell", choices=["per_cell", "per_model"],
                        help="a swept experiment's selected setting: per (model, data), or per model at its "
                             "largest D (training.sweep.select)")
    parser.add_argument("metrics", nargs="+", help="metrics.json files, one per cell")
    args = parser.parse_args(argv)
    try:
        runs = write_runs(args.metrics, args.out, args.curves, args.summary, args.select)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    counts = runs["status"].value_counts().to_dict()
    print(f"{len(runs)} cells -> {args.out} ({', '.join(f'{k}: {v}' for k, v in counts.items())})")


if __name__ == "__main__":
    main()
