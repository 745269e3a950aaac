"""Which setting of a hyperparameter sweep counts, and whether the sweep brackets it.

A swept experiment's cells (``training.sweep``, ``workflow_scripts.plan.sweep``) carry a
``setting`` (its name, e.g. ``lr=x2``) and ``sweep.<key>`` columns (the values it trained with)
in runs.csv. ``select`` marks the selected setting of each cell: per (model, data) the setting
with the most usable seeds and, among those, the lowest mean validation loss (``per_cell``), or
per model the best at its largest D, for all its D (``per_model``). The laws and figures read only
the selected rows (``workflow_scripts.analysis.cells``); ``section`` is fits.json's record of the
choice, with one line for each selected value at the edge of what was swept, and the optimal
learning rate of each size against N with its power law (``optimal_lr``: what a muP or
1/sqrt(fan-in) rule should match).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from workflow_scripts.analysis.cells import usable_mask

GROUP = ["experiment", "model", "data"]


def swept(runs: pd.DataFrame) -> bool:
    """Whether runs.csv comes from a swept experiment (its cells carry a setting)."""
    return "setting" in runs.columns and runs["setting"].notna().any()


def sweep_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith("sweep.")]


def _scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, model, data, setting): usable seeds and their mean validation loss."""
    usable = usable_mask(runs)
    frame = runs.assign(_usable=usable, _loss=pd.to_numeric(runs["val_loss"], errors="coerce").where(usable))
    return frame.groupby([*GROUP, "setting"], sort=False).agg(
        n_usable=("_usable", "sum"), mean_loss=("_loss", "mean"), D=("D", "max")).reset_index()


def _at_largest_d(scores: pd.DataFrame) -> pd.DataFrame:
    """The usable scores of each model at its largest D."""
    scores = scores[scores["n_usable"] > 0]
    return scores[scores["D"] == scores.groupby(["experiment", "model"])["D"].transform("max")]


def _best(scores: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The best setting of each group of ``scores``: most usable seeds, then lowest mean loss."""
    ranked = scores[scores["n_usable"] > 0].sort_values(["n_usable", "mean_loss"], ascending=[False, True],
                                                        kind="stable")
    return ranked.drop_duplicates(by)


def select(runs: pd.DataFrame, mode: str = "per_cell") -> pd.DataFrame:
    """runs with a ``selected`` column (True for every row of an unswept experiment)."""
    if mode not in ("per_cell", "per_model"):
        raise ValueError(f"select = {mode!r}: expected per_cell or per_model")
    if not swept(runs):
        return runs.assign(selected=True)
    scores = _scores(runs)
    if mode == "per_cell":
        best = _best(scores, GROUP)[[*GROUP, "setting"]]
    else:  # each model's best at its largest D, applied to all its D
        best = _best(_at_largest_d(scores), ["experiment", "model"])[["experiment", "model", "setting"]]
    chosen = set(map(tuple, best.astype(str).to_numpy()))
    keys = runs[list(best.columns)].astype(str).apply(tuple, axis=1)
    return runs.assign(selected=keys.isin(chosen).to_numpy())


def edges(runs: pd.DataFrame) -> list[str]:
    """One line per (model, data) whose selected value of a swept key is the smallest or largest swept there."""
    lines = []
    columns = sweep_columns(runs)
    for (_, model, data), group in runs.groupby(GROUP, sort=False):
        chosen = group[group["selected"].astype(bool)]
        if chosen.empty:
            continue
        for column in columns:
            values = pd.to_numeric(group[column], errors="coerce").dropna().unique()
            value = pd.to_numeric(chosen[column], errors="coerce").iloc[0]
            if len(values) < 2 or not np.isfinite(value):
                continue
            side = "smallest" if value == values.min() else "largest" if value == values.max() else None
            if side:
                key = column.removeprefix("sweep.")
                lines.append(f"{model} {data}: the selected setting {chosen['setting'].iloc[0]} "
                             f"({key} {value:g}) is the {side} {key} swept; the optimum may lie beyond the sweep")
    return lines


def u_curve(runs: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per model at its largest D: mean validation loss over the seeds against the swept ``key``
    (the best over any other swept key), and whether the value is the selected one."""
    column = f"sweep.{key}"
    scores = _scores(runs).merge(runs.drop_duplicates([*GROUP, "setting"])[
        [*GROUP, "setting", column, "N_nonembedding", "selected"]], on=[*GROUP, "setting"])
    scores = _at_largest_d(scores)
    best = scores.sort_values("mean_loss", kind="stable").groupby(["model", column], sort=False)
    curve = best.agg(N=("N_nonembedding", "first"), D=("D", "first"), mean_loss=("mean_loss", "first"),
                     selected=("selected", "any")).reset_index().rename(columns={column: "value"})
    return curve.sort_values(["N", "value"], ignore_index=True)


def _vertex(values: np.ndarray, losses: np.ndarray) -> tuple[float, bool]:
    """The loss-minimising value, refined by a parabola in log(value) through the best point and its
    neighbours; (the best swept value, True) when it is the smallest or largest swept."""
    i = int(np.argmin(losses))
    if i in (0, len(values) - 1):
        return float(values[i]), True
    x, y = np.log(values[i - 1:i + 2]), losses[i - 1:i + 2]
    a, b, _ = np.polyfit(x, y, 2)
    return (float(np.exp(-b / (2 * a))) if a > 0 else float(values[i])), False


def optimal_lr(runs: pd.DataFrame, level: float = 0.95) -> dict | None:
    """Each size's optimal peak rate at its largest D and the power law lr_opt = c N^gamma fitted
    to them in log-log (least squares; ``gamma_ci`` its t interval from three sizes on, with
    the sizes at the sweep's edge left out of the fit: their optimum is not known)."""
    if "sweep.lr" not in runs.columns:
        return None
    sizes = []
    for model, part in u_curve(runs, "lr").groupby("model", sort=False):
        lr, edge = _vertex(part["value"].to_numpy(float), part["mean_loss"].to_numpy(float))
        sizes.append({"model": model, "N": float(part["N"].iloc[0]), "D": float(part["D"].iloc[0]),
                      "lr_selected": float(part.loc[part["selected"], "value"].iloc[0]) if part["selected"].any()
                      else None, "lr_opt": lr, "at_edge": edge})
    inside = [s for s in sizes if not s["at_edge"]]
    fit = {"sizes": sorted(sizes, key=lambda s: s["N"]), "gamma": None, "coefficient": None, "gamma_ci": None,
           "fitted_on": len(inside)}
    if len(inside) >= 2:
        x, y = np.log([s["N"] for s in inside]), np.log([s["lr_opt"] for s in inside])
        line = stats.linregress(x, y) if len(inside) >= 3 else None
        slope, intercept = (line.slope, line.intercept) if line else np.polyfit(x, y, 1)
        fit.update(gamma=float(slope), coefficient=float(np.exp(intercept)))
        if line is not None and len(inside) > 2:
            half = stats.t.ppf(0.5 + level / 2, len(inside) - 2) * line.stderr
            fit["gamma_ci"] = [float(slope - half), float(slope + half)]
    return fit


def section(runs: pd.DataFrame) -> dict | None:
    """fits.json's ``sweep``: the keys and settings swept, each cell's selected setting, the edge lines."""
    if not swept(runs) or "selected" not in runs.columns:
        return None
    chosen = runs[runs["selected"].astype(bool)].drop_duplicates(GROUP)
    return {
        "keys": [c.removeprefix("sweep.") for c in sweep_columns(runs)],
        "settings": sorted(runs["setting"].dropna().astype(str).unique()),
        "selected": {f"{r.model}/{r.data}": r.setting for r in chosen.itertuples()},
        "edges": edges(runs),
        "optimal_lr": optimal_lr(runs),
    }
