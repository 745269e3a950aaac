"""What every law module shares: the fit job, the law's registry record, cell selections, the
extrapolation check and the fields of a fits.json entry.

A law module (``workflow_scripts.analysis.fit.power_law``, ``.parametric``, ``.isoflops``,
``.kaplan``, ``.approach1``, ``.critical_batch``) holds its formula, its fit and a ``Law`` whose ``fit(job)``
returns its fits.json entry; ``workflow_scripts.analysis.fit.registry`` lists them. The
extrapolation check refits a law without its largest-compute cells and compares its
prediction with what they reached.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import cell_ids
from workflow_scripts.io import schema_defaults

# The experiment's analysis block as the schema fills it: the one place the fits' defaults live.
DEFAULTS = schema_defaults("$defs/experiment/properties/analysis")
CELL_KEYS = ["N_nonembedding", "D"]


@dataclasses.dataclass(frozen=True)
class Job:
    """One experiment's cells and the options every law is fitted with (defaults: config/schema.yaml)."""

    experiment: str
    usable: pd.DataFrame  # usable cells (workflow_scripts.analysis.cells.usable_runs)
    excluded: list  # workflow_scripts.analysis.cells.exclusions
    curves: pd.DataFrame | None = None  # curves.parquet rows of this experiment
    n_boot: int = DEFAULTS["bootstrap"]
    seed: int = DEFAULTS["seed"]
    level: float = DEFAULTS["level"]
    irreducible: bool = DEFAULTS["irreducible"]
    n_holdout: int = DEFAULTS["holdout"]
    approach1_points: str = DEFAULTS["approach1_points"]
    curve_skip: float = DEFAULTS["curve_skip"]
    parametric_grid: Mapping[str, Sequence[float]] | None = None  # None: parametric.DEFAULT_GRID
    workers: int = 1  # processes for L(N,D)'s start grid and bootstrap: the same numbers as one

    def skipped(self, law: str, why: str) -> dict[str, str]:
        """The entry of a law that could not be fitted, its reason naming experiment and law."""
        return {"law": law, "skipped": f"experiment {self.experiment!r}, law {law}: {why}"}


def always(runs: pd.DataFrame, has_curves: bool) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Law:
    """A law's record in ``workflow_scripts.analysis.fit.registry``.

    ``fit(job)`` returns its fits.json entry (with ``skipped`` when it cannot be fitted);
    ``applies(runs, has_curves)`` whether it is among the laws fitted by default;
    ``summary(entry)`` the CLI's line for a fitted entry; ``sections`` keys of the entry
    moved to the top level of fits.json (L(N,D)'s ``compute_optimal``).
    """

    name: str
    fit: Callable[[Job], dict[str, Any]]
    summary: Callable[[dict[str, Any]], str]
    applies: Callable[[pd.DataFrame, bool], bool] = always
    sections: tuple[str, ...] = ()


def allocation_summary(result: dict[str, Any]) -> str:
    """The CLI's line of a law of the compute-optimal allocation (approaches 1 and 2)."""
    return f"N_opt ~ C^{result['a']:.3f} {result['ci'].get('a')}, D_opt ~ C^{result['b']:.3f}"


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
    rows = [{"cell": cell, "C": float(c), "actual": float(a), "predicted": float(p),
             "relative_error": float(r)}
            for cell, c, a, p, r in zip(cell_ids(held), held["C"], actual, predicted, rel)]
    return {**head, "params": params, "held_out": rows,
            "mean_abs_relative_error": float(np.mean(np.abs(rel)))}


def law_entry(head, selection, fit, cells, job: Job, warnings, needed) -> dict[str, Any]:
    """A fitted law's entry of fits.json, with the warnings every law shares."""
    if fit["n_bootstrap_failed"] > job.n_boot / 2:
        warnings.append(f"{fit['n_bootstrap_failed']} of {job.n_boot} bootstrap resamples had too few "
                        f"{needed}")
    if fit["best_start_on_grid_edge"]:
        warnings.append("the best start lies on the edge of the initialisation grid: widen it")
    return {**head, "selection": selection, "params": fit["params"], "ci": fit["ci"], "ci_level": job.level,
            "n_bootstrap": job.n_boot, "n_bootstrap_failed": fit["n_bootstrap_failed"],
            "goodness": fit["goodness"],
            "best_start_on_grid_edge": fit["best_start_on_grid_edge"], "best_start": fit["best_start"],
            "cells_used": list(cell_ids(cells)), "cells_excluded": job.excluded,
            "warnings": warnings}
