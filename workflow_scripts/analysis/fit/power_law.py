"""Single-variable power laws L = E + A·x^(−α): the fit and its bootstrap intervals.

The method of Hoffmann et al. (2022, §3.3, App. D.2) as replicated by Besiroglu et al.
(Epoch AI, 2024), restricted to one term: log L is fitted as logsumexp(a − α log x, e) by
minimising the summed Huber loss (δ = 1e-3) of the log residuals with L-BFGS-B from every
start of a grid (``workflow_scripts.analysis.fit.huber``); without the irreducible term E the law is a
line in log-log space, fitted by least squares (Kaplan et al. 2020, Eq. 1.1). Intervals
resample groups of points (cells) with replacement.

The laws L(N) at the largest D, L(D) at the largest N and L(C) on the compute-efficient
frontier (Kaplan et al. 2020, Eq. 1.1-1.3, on non-embedding parameters) are this form; their
fits.json entries are ``entry``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import stats
from workflow_scripts.analysis.fit import laws
from workflow_scripts.analysis.fit import quality

HUBER_DELTA = hf.HUBER_DELTA
NAMES = ("a", "alpha", "e")  # θ's layout in the engine for one term
# The initialisation grid of Hoffmann et al. (2022), App. D.2, restricted to one term.
DEFAULT_GRID = {
    "alpha": tuple(np.arange(0.0, 2.01, 0.5)),
    "e": tuple(np.arange(-1.0, 1.01, 0.5)),
    "a": tuple(np.arange(0.0, 25.01, 5.0)),
}


@dataclasses.dataclass(frozen=True)
class Variable:
    """A single-variable law's x column, and the column held at its largest value (None: the frontier)."""

    x: str
    fixed: str | None


VARIABLES = {"L(N)": Variable("N_nonembedding", "D"), "L(D)": Variable("D", "N_nonembedding"),
             "L(C)": Variable("C", None)}


def law(params: dict[str, float], x) -> np.ndarray:
    """L = E + A·x^(−α)."""
    return params["E"] + params["A"] * np.asarray(x, dtype=float) ** -params["alpha"]


def _objective(theta: np.ndarray, lx: np.ndarray, ly: np.ndarray, delta: float):
    """Summed Huber loss of log L̂ − log y and its gradient for one term, θ = (a, α, e)."""
    return hf.objective(np.asarray(theta, dtype=float), np.asarray(lx)[None, :], ly, 1.0, delta)


def _check_xy(x, y, min_distinct: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x and y must be finite and positive for a log-space fit")
    if np.unique(x).size < min_distinct:
        raise ValueError(f"need at least {min_distinct} distinct x values, got {np.unique(x).size}")
    return x, y


def _params(theta: np.ndarray) -> dict[str, float]:
    a, alpha, e = theta
    with np.errstate(over="ignore"):
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": float(alpha)}


def _loglinear(lx: np.ndarray, ly: np.ndarray, w=None) -> np.ndarray:
    """Pure power law log L = a − α log x by (weighted) least squares (Kaplan et al. 2020, Eq. 1.1)."""
    # polyfit weights multiply residuals: √w weighs each squared residual by its count.
    slope, intercept = np.polyfit(lx, ly, 1, w=None if w is None else np.sqrt(w))
    return np.array([intercept, -slope, -np.inf])


def _grid(grid: dict[str, Sequence[float]] | None):
    return hf.grid_starts(DEFAULT_GRID if grid is None else grid, NAMES)


def fit_power_law(x, y, grid: dict[str, Sequence[float]] | None = None, irreducible: bool = True,
                  delta: float = HUBER_DELTA) -> dict[str, Any]:
    """Fit L = E + A·x^(−α) (or L = A·x^(−α) without ``irreducible``) to points (x, y).

    Returns ``params`` {E, A, alpha}, ``best_start_on_grid_edge`` (no interior start of the
    grid reached the best optimum: widen the grid), the ``best_start`` and ``goodness``.
    """
    x, y = _check_xy(x, y, 3 if irreducible else 2)
    lx, ly = np.log(x), np.log(y)
    if not irreducible:
        theta = _loglinear(lx, ly)
        pred = theta[0] - theta[1] * lx
        return {"params": {"E": 0.0, "A": float(np.exp(theta[0])), "alpha": float(theta[1])},
                "best_start_on_grid_edge": False, "best_start": None,
                "goodness": stats.goodness(ly, pred, None)}
    starts, edge = _grid(grid)
    full = hf.fit_grid(lx[None, :], ly, starts, edge, delta)
    return {
        "params": _params(full["theta"]),
        "best_start_on_grid_edge": full["on_edge"],
        "best_start": dict(zip(NAMES, (float(v) for v in starts[full["start"]]))),
        "goodness": stats.goodness(ly, hf.predict(full["theta"], lx[None, :]), full["objective"]),
    }


def bootstrap_power_law(x, y, groups=None, n_boot: int = laws.DEFAULTS["bootstrap"],
                        seed: int = laws.DEFAULTS["seed"], level: float = laws.DEFAULTS["level"],
                        irreducible: bool = True, grid: dict[str, Sequence[float]] | None = None,
                        n_starts: int = 1, delta: float = HUBER_DELTA) -> dict[str, Any]:
    """Percentile intervals for E, A, α from resampling groups (cells) with replacement.

    All points of one group (e.g. the seeds of one cell; by default one x value) are drawn
    together. Each resample is refitted from the full-data optimum, up to ``n_starts``
    other local optima of the grid fit and the grid start best on that resample; resamples
    with fewer than 3 distinct x (2 for a pure power law) or a non-finite optimum are
    counted in ``n_failed`` and left out. Deterministic given ``seed``.
    """
    stats.check_level(level, n_boot)
    min_distinct = 3 if irreducible else 2
    x, y = _check_xy(x, y, min_distinct)
    groups = x if groups is None else np.asarray(groups)
    if groups.shape != x.shape:
        raise ValueError(f"groups has {groups.size} entries for {x.size} points")
    lx, ly = np.log(x), np.log(y)

    def valid(mask):
        return np.unique(x[mask]).size >= min_distinct

    if irreducible:
        starts, edge = _grid(grid)
        full = hf.fit_grid(lx[None, :], ly, starts, edge, delta)
        thetas, failed = hf.bootstrap_grid(lx[None, :], ly, groups, starts, full, n_boot, seed, valid, delta,
                                           n_polish=1, n_basins=1 + n_starts)
    else:
        thetas, failed = [], 0
        for w in hf.resample_weights(groups, n_boot, seed):
            if valid(w > 0):
                thetas.append(_loglinear(lx[w > 0], ly[w > 0], w[w > 0]))
            else:
                failed += 1
    samples = []
    for theta in thetas:
        params = _params(theta)
        if all(math.isfinite(v) for v in params.values()):
            samples.append(params)
        else:
            failed += 1
    table = pd.DataFrame(samples, columns=["E", "A", "alpha"], dtype=float)
    ci = stats.percentile_ci(table, level) if len(table) else {k: None for k in table}
    return {"ci": ci, "level": level, "n_bootstrap": n_boot, "n_failed": failed, "samples": table}


def single_cells(name: str, usable: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The cells of law ``name`` and how they were selected."""
    fixed_col = VARIABLES[name].fixed
    if fixed_col is None:
        return laws.frontier(usable), "the compute-efficient frontier (no cheaper cell has a lower loss)"
    if usable.empty:
        return usable, "no usable cells"
    fixed = usable[fixed_col].max()
    return usable[usable[fixed_col] == fixed], f"{fixed_col} = {fixed:.0f}"


def entry(name: str, job: laws.Job) -> dict[str, Any]:
    """The fits.json entry of single-variable law ``name``, on the cells ``single_cells`` selects."""
    if job.usable.empty:
        return job.skipped(name, "no usable cells")
    x_col = VARIABLES[name].x
    cells, selection = single_cells(name, job.usable)
    form = f"L = {'E + ' if job.irreducible else ''}A * {name[2]}^-alpha"
    head = {"law": name, "form": form, "x": x_col, "y": "val_loss"}
    n_x, need = cells[x_col].nunique(), 3 if job.irreducible else 2
    if n_x < need:
        return job.skipped(name, f"only {n_x} distinct {x_col} value(s) among usable cells at {selection} "
                           f"(need {need})")
    x, y = cells[x_col].to_numpy(float), cells["val_loss"].to_numpy(float)
    fit = fit_power_law(x, y, irreducible=job.irreducible)
    boot = bootstrap_power_law(x, y, groups=x, n_boot=job.n_boot, seed=job.seed, level=job.level,
                               irreducible=job.irreducible)
    warnings = []
    if n_x == need:  # a resample keeping `need` distinct x is the full data again
        warnings.append(f"only {need} distinct {x_col} values for {need} parameters: "
                        "the interval understates the uncertainty")
    goodness = {**fit["goodness"], **quality.residual_record(x, np.log(y), np.log(law(fit["params"], x)))}
    fit = {**fit, "goodness": goodness, "ci": boot["ci"], "n_bootstrap_failed": boot["n_failed"]}
    result = laws.law_entry(head, selection, fit, cells, job, warnings, f"distinct {x_col} values")
    result["extrapolation"] = laws.extrapolation(
        cells,
        lambda kept: fit_power_law(kept[x_col], kept["val_loss"], irreducible=job.irreducible)["params"],
        lambda params, held: law(params, held[x_col]), job.n_holdout)
    return result


def summary(result: dict[str, Any]) -> str:
    p = result["params"]
    return (f"E={p['E']:.4g} A={p['A']:.4g} alpha={p['alpha']:.4f} {result['ci_level']:.0%} CI "
            f"{result['ci']['alpha']} ({len(result['cells_used'])} cells)")


REGISTERED = tuple(laws.Law(name, functools.partial(entry, name), summary) for name in VARIABLES)
