"""What every figure reads: runs.csv and fits.json checked, an experiment's usable cells, a law's cells, the curves.

Shared by the figure modules (``workflow_scripts.analysis.figures.sizes``, ``.curves``, ``.fits``,
``.allocation``) and ``workflow_scripts.analysis.compare``; the CLI that dispatches to them is
``workflow_scripts.analysis.figures.draw``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import cell_ids, selected_rows, usable_runs
from workflow_scripts.io import read_json

RUNS_COLUMNS = ("status", "val_loss", "N_nonembedding", "D")
CURVE_COLUMNS = ("model", "data", "seed", "N_nonembedding", "D", "status", "tokens", "flops", "eval_loss")


def load(runs, fits) -> tuple[pd.DataFrame, dict]:
    """runs.csv and fits.json (paths, or a DataFrame and a dict already read), runs' columns checked."""
    runs = runs if isinstance(runs, pd.DataFrame) else pd.read_csv(runs)
    fits = fits if isinstance(fits, dict) else read_json(fits)
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}; expected runs.csv of "
                         "workflow_scripts.analysis.aggregate")
    return runs, fits


def experiment_cells(runs: pd.DataFrame, fits: dict[str, Any]) -> pd.DataFrame:
    """The usable cells of the experiment fits.json belongs to."""
    return usable_runs(runs, fits.get("experiment"))


def law_entry(fits: dict[str, Any], law: str) -> dict[str, Any]:
    """fits.json's entry of one law, empty when the law is not there."""
    return fits.get("laws", {}).get(law) or {}


def fitted_cells(runs: pd.DataFrame, entry: dict[str, Any]) -> pd.DataFrame:
    """The rows of runs a fits.json entry lists in cells_used."""
    return runs[cell_ids(runs).isin(entry.get("cells_used") or [])]


def curves_table(curves) -> pd.DataFrame | None:
    """curves.parquet as a table: a DataFrame as is, a path read, None (or a path that is not parquet) as None."""
    if curves is None or isinstance(curves, pd.DataFrame):
        return curves
    return pd.read_parquet(curves) if str(curves).endswith(".parquet") and os.path.exists(curves) else None


def load_curves(curves, experiment: str | None = None) -> tuple[pd.DataFrame | None, str]:
    """Usable evaluations (status ok, tokens, FLOPs and loss positive) or (None, why not)."""
    if curves is None:
        return None, "no learning curves given"
    if not isinstance(curves, pd.DataFrame):
        if not os.path.exists(curves):
            return None, f"{os.path.basename(str(curves))} not found"
        curves = pd.read_parquet(curves)
    if "tokens" not in curves.columns and "samples" in curves.columns:
        # A samples dataset's curves count samples: "tokens" below means data seen, labelled by runs' D_unit.
        curves = curves.rename(columns={"samples": "tokens"})
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        return None, f"curves lack column(s) {', '.join(missing)}"
    if experiment is not None and "experiment" in curves.columns:
        curves = curves[curves["experiment"].astype(str) == experiment]
    curves = selected_rows(curves)
    # Step 0 sits at zero tokens and FLOPs: off a log axis, so left out.
    keep = (curves["status"] == "ok") & (curves["tokens"] > 0) & (curves["flops"] > 0)
    loss = pd.to_numeric(curves["eval_loss"], errors="coerce")
    curves = curves[keep & np.isfinite(loss) & (loss > 0)]
    if curves.empty:
        return None, "no usable evaluation in the learning curves"
    return curves.sort_values(["N_nonembedding", "D", "seed", "tokens"]), ""
