"""Which cells of runs.csv count: their ids and whether a law or figure may use them.

A cell is named ``model/data/seed`` in fits.json (``cells_used``, ``excluded``) and is
usable when its status is ``ok`` and its validation loss a finite positive number; a
cell that is not gets the reason in ``exclusions``. A swept experiment's cell is named
``model/data/setting/seed``, and only its selected rows count (``selected_rows``; the choice is
``workflow_scripts.analysis.sweep``'s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ID_COLUMNS = ("model", "data", "seed")


def cell_ids(frame: pd.DataFrame, columns: tuple[str, ...] = ID_COLUMNS) -> pd.Series:
    """``model/data/seed`` of every row of runs.csv or of the curves table; with ``columns``
    ("model", "data") the id the seeds of one cell share."""
    parts = [frame[c].astype(str) for c in columns]
    if columns == ID_COLUMNS and "setting" in frame.columns:  # a swept cell: its setting before the seed
        setting = frame["setting"]
        parts.insert(2, setting.astype(str).where(setting.notna(), None))
    ids = parts[0]
    for part in parts[1:]:
        ids = ids + ("/" + part).fillna("")
    return ids


def selected_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs.csv or of the curves table that count: a swept experiment's selected settings."""
    if "selected" not in frame.columns:
        return frame
    return frame[frame["selected"].astype("boolean").fillna(False).astype(bool)]


def usable_mask(runs: pd.DataFrame) -> pd.Series:
    """Rows a law may be fitted to: status ok and a finite positive validation loss."""
    loss = pd.to_numeric(runs["val_loss"], errors="coerce")
    return (runs["status"] == "ok") & np.isfinite(loss) & (loss > 0)


def usable_runs(runs: pd.DataFrame, experiment: str | None = None) -> pd.DataFrame:
    """The usable rows (of one experiment, if named), their val_loss as floats."""
    if experiment is not None and "experiment" in runs.columns:
        runs = runs[runs["experiment"].astype(str) == experiment]
    runs = selected_rows(runs)
    keep = usable_mask(runs)
    runs = runs[keep].copy()
    runs["val_loss"] = pd.to_numeric(runs["val_loss"], errors="coerce").astype(float)
    return runs


def exclusions(runs: pd.DataFrame) -> list[dict[str, str]]:
    """Cells no law may use, each with its reason."""
    excluded = []
    runs = selected_rows(runs)
    bad = runs[~usable_mask(runs)]
    for cell, (_, row) in zip(cell_ids(bad), bad.iterrows()):
        if row["status"] != "ok":
            reason = f"status is {row['status']!r}"
        else:
            reason = f"val_loss is not a finite positive number ({row['val_loss']})"
        excluded.append({"cell": cell, "reason": reason})
    return excluded
