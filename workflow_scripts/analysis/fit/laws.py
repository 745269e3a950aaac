"""Which cells each law of an experiment is fitted to, and how well a law extrapolates.

The selection half of ``workflow_scripts.analysis.fit.experiment``: the law names a config may switch on, the
cells no law may use, the cells of each single-variable law (L(N) at the largest D, L(D) at
the largest N, L(C) on the compute-efficient frontier), and the extrapolation check: refit
a law without its largest-compute cells and compare its prediction with what they reached.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from workflow_scripts.analysis.fit.isoflops import fit_isoflops

# Every law an experiment may fit (config ``analysis.laws``; the schema's enum lists these).
# L(N,D) is Chinchilla's parametric law; kaplan_L(N,D) and L(N,S) are Kaplan et al. (2020)'s
# Eq. 1.5 and 1.6 (``workflow_scripts.analysis.fit.kaplan``); approach1 is Chinchilla's §3.1 envelope.
LAWS = ("L(N)", "L(D)", "L(C)", "L(N,D)", "isoflop", "kaplan_L(N,D)", "L(N,S)", "approach1")
# Laws read from the learning curves (approach1 only in its "all" mode).
CURVE_LAWS = ("L(N,S)",)
# (x column, column held at its largest value or None) of the single-variable laws.
# Kaplan et al. (2020) fit L(N) on non-embedding parameters (Eq. 1.1), L(D) (Eq. 1.2), L(C_min) (Eq. 1.3).
SINGLE = {"L(N)": ("N_nonembedding", "D"), "L(D)": ("D", "N_nonembedding"), "L(C)": ("C", None)}
CELL_KEYS = ["N_nonembedding", "D"]


def cell_id(row) -> str:
    return f"{row['model']}/{row['data']}/{row['seed']}"


def exclusions(runs: pd.DataFrame) -> list[dict[str, str]]:
    """Cells no law may use, each with its reason."""
    excluded = []
    for _, row in runs.iterrows():
        loss = pd.to_numeric(row["val_loss"], errors="coerce")
        if row["status"] != "ok":
            reason = f"status is {row['status']!r}"
        elif not (np.isfinite(loss) and loss > 0):
            reason = f"val_loss is not a finite positive number ({row['val_loss']})"
        else:
            continue
        excluded.append({"cell": cell_id(row), "reason": reason})
    return excluded


def budgets(runs: pd.DataFrame) -> np.ndarray:
    """The compute budget each cell was planned for: ``C_budget`` of metrics.json, else read from
    an IsoFLOP data name (``C1e+15``); NaN for a cell of a data-size grid."""
    names = runs["data"].astype(str)
    from_names = pd.to_numeric(names.str[1:].where(names.str.startswith("C")), errors="coerce")
    if "C_budget" in runs.columns:
        return pd.to_numeric(runs["C_budget"], errors="coerce").fillna(from_names).to_numpy(float)
    return from_names.to_numpy(float)


def is_isoflop(runs: pd.DataFrame) -> bool:
    """Whether the cells are an IsoFLOP grid: every cell has a planned compute budget."""
    values = budgets(runs)
    return bool(len(runs)) and bool(np.all(np.isfinite(values) & (values > 0)))


def applies(law: str, runs: pd.DataFrame, has_curves: bool) -> bool:
    """Whether a law is of a kind the cells can give (the default list): isoflop to an IsoFLOP grid,
    L(N,S) to cells with learning curves, approach1 to curves or to two models with two data sizes."""
    if law == "isoflop":
        return is_isoflop(runs)
    if law in CURVE_LAWS:
        return has_curves
    if law == "approach1":
        return has_curves or int((runs.groupby("N_nonembedding")["D"].nunique() >= 2).sum()) >= 2
    return True


def requested(runs: pd.DataFrame, laws, has_curves: bool = False) -> list[str]:
    """The laws to fit, in ``LAWS`` order: those named, or by default all that apply (``applies``)."""
    if laws is None:
        laws = [law for law in LAWS if applies(law, runs, has_curves)]
    unknown = sorted(set(laws) - set(LAWS))
    if unknown:
        raise ValueError(f"unknown law(s) {', '.join(unknown)}; expected some of {', '.join(LAWS)}")
    return [law for law in LAWS if law in laws]


def frontier(usable: pd.DataFrame) -> pd.DataFrame:
    """The rows (all seeds) of the cells on the compute-efficient frontier of final losses.

    A cell is on it when no cell of at most its compute reaches a lower mean loss over seeds
    (the Pareto frontier of (C, L)): the best loss bought with C, which L(C) describes
    (Kaplan et al. 2020, Eq. 1.3 and §6, where the envelope of learning curves plays this
    role; final losses only here, so every point is a fully trained cell). A lower convex hull
    in log-log space would also drop efficient cells lying above a chord; that presumes the
    curvature the fit is meant to measure, so it is not used.
    """
    if usable.empty:
        return usable
    cells = usable.groupby(CELL_KEYS, sort=False).agg(C=("C", "mean"), loss=("val_loss", "mean"))
    cells = cells.reset_index().sort_values(["C", "loss"], kind="stable")
    best_before = np.minimum.accumulate(np.r_[np.inf, cells["loss"].to_numpy()[:-1]])
    on = cells[cells["loss"].to_numpy() < best_before]
    keep = pd.MultiIndex.from_frame(usable[CELL_KEYS]).isin(pd.MultiIndex.from_frame(on[CELL_KEYS]))
    return usable[keep]


def single_cells(law: str, usable: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """(cells, x column, how they were selected) of a single-variable law."""
    x_col, fixed_col = SINGLE[law]
    if law == "L(C)":
        return frontier(usable), x_col, "the compute-efficient frontier (no cheaper cell has a lower loss)"
    if usable.empty:
        return usable, x_col, "no usable cells"
    fixed = usable[fixed_col].max()
    return usable[usable[fixed_col] == fixed], x_col, f"{fixed_col} = {fixed:.0f}"


def split_largest_compute(cells: pd.DataFrame, n_holdout: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held out): the cells (all seeds) at the ``n_holdout`` largest compute values, held out."""
    compute = np.array([float(f"{v:.9g}") for v in cells["C"].to_numpy(float)])  # one value per cell's seeds
    values = np.unique(compute)
    held = compute >= values[-min(n_holdout, len(values))] if len(values) else compute > 0
    return cells[~held], cells[held]


def extrapolation(cells: pd.DataFrame, refit: Callable[[pd.DataFrame], Any],
                  predict: Callable[[Any, pd.DataFrame], np.ndarray], n_holdout: int = 1) -> dict[str, Any]:
    """Refit without the cells of the largest compute and predict them.

    ``refit(cells)`` returns the law's parameters (or raises ValueError when the cells left
    cannot identify it); ``predict(params, cells)`` the loss at each cell. Relative error is
    (predicted − actual) / actual per held-out cell, summarised by its mean absolute value.
    """
    kept, held = split_largest_compute(cells, n_holdout)
    head = {"held_out_compute_values": n_holdout, "n_points_fitted": len(kept)}
    try:
        params = refit(kept)
    except ValueError as why:
        return {**head, "skipped": f"without the {n_holdout} largest compute value(s): {why}"}
    actual = held["val_loss"].to_numpy(float)
    with np.errstate(all="ignore"):
        predicted = np.asarray(predict(params, held), dtype=float)
    if not (np.all(np.isfinite(predicted)) and all(np.isfinite(v) for v in params.values())):
        return {**head, "skipped": f"without the {n_holdout} largest compute value(s): the refit "
                f"diverged ({', '.join(f'{k}={v:.3g}' for k, v in params.items())})"}
    rel = (predicted - actual) / actual
    rows = [{"cell": cell_id(row), "C": float(row["C"]), "actual": float(a), "predicted": float(p),
             "relative_error": float(r)}
            for (_, row), a, p, r in zip(held.iterrows(), actual, predicted, rel)]
    return {**head, "params": params, "held_out": rows,
            "mean_abs_relative_error": float(np.mean(np.abs(rel)))}


def power_law(params: dict[str, float], x) -> np.ndarray:
    """L = E + A·x^(−α)."""
    return params["E"] + params["A"] * np.asarray(x, dtype=float) ** -params["alpha"]


def parametric_law(params: dict[str, float], n, d) -> np.ndarray:
    """L = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 2)."""
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    return params["E"] + params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"]


def isoflop_entry(usable: pd.DataFrame, excluded: list, experiment: str, n_boot: int, seed: int,
                  level: float) -> dict[str, Any]:
    """The isoflop entry of fits.json: Chinchilla's approach 2 over the planned budgets."""
    law = "isoflop"
    if usable.empty or not is_isoflop(usable):
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: the usable cells are not an "
                "IsoFLOP grid (experiment.compute_budgets)"}
    iso = fit_isoflops(usable["N_nonembedding"], budgets(usable), usable["val_loss"], n_boot=n_boot,
                       seed=seed, level=level)
    iso = {k: v for k, v in iso.items() if k != "samples"}
    if "skipped" in iso:
        return {**iso, "law": law, "skipped": f"experiment {experiment!r}, law {law}: {iso['skipped']}"}
    return {"law": law, "x": ["N_nonembedding", "C budget"], "y": "val_loss", **iso,
            "cells_used": [cell_id(r) for _, r in usable.iterrows()], "cells_excluded": excluded}


def law_entry(head, selection, fit, cells, excluded, n_boot, level, warnings, needed) -> dict[str, Any]:
    """A fitted law's entry of fits.json, with the warnings every law shares."""
    if fit["n_bootstrap_failed"] > n_boot / 2:
        warnings.append(f"{fit['n_bootstrap_failed']} of {n_boot} bootstrap resamples had too few {needed}")
    if fit["best_start_on_grid_edge"]:
        warnings.append("the best start lies on the edge of the initialisation grid: widen it")
    return {**head, "selection": selection, "params": fit["params"], "ci": fit["ci"], "ci_level": level,
            "n_bootstrap": n_boot, "n_bootstrap_failed": fit["n_bootstrap_failed"],
            "goodness": fit["goodness"],
            "best_start_on_grid_edge": fit["best_start_on_grid_edge"], "best_start": fit["best_start"],
            "cells_used": [cell_id(r) for _, r in cells.iterrows()], "cells_excluded": excluded,
            "warnings": warnings}
