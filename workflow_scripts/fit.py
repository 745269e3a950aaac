"""Fit scaling laws L(x) = E + A·x^(−α) to one experiment's runs, with bootstrap intervals.

The method is Hoffmann et al. (2022, §3.3 and App. D.2) as replicated by Besiroglu
et al. (Epoch AI, 2024): fit log L with the logsumexp parameterisation, minimise the
Huber loss (δ = 1e-3) of the log residuals summed over points with L-BFGS-B from every
start of a grid, keep the best; intervals come from resampling cells with replacement.
Run by hand or from Snakemake as::

    python -m workflow_scripts.fit --runs results/default/runs.csv --out results/default/fits.json
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from workflow_scripts.io import atomic_write_json, provenance

FORMAT_VERSION = 1
HUBER_DELTA = 1e-3
# The initialisation grid of Hoffmann et al. (2022), App. D.2, restricted to one term.
DEFAULT_GRID = {
    "alpha": tuple(np.arange(0.0, 2.01, 0.5)),
    "e": tuple(np.arange(-1.0, 1.01, 0.5)),
    "a": tuple(np.arange(0.0, 25.01, 5.0)),
}
# With δ = 1e-3 the summed Huber objective is ~1e-5, far below L-BFGS-B's default ftol
# (relative to max(|f|, 1)), which would stop it early; these tolerances let it converge.
_LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000}
# Starts ending within this distance of the best objective count as reaching it (the
# absolute floor, ~1e-6 rms log residual, covers exact data where the optimum is ~0).
_TIE_RTOL, _TIE_ATOL = 1e-6, 1e-12
_BASIN_RTOL = 1e-3
REQUIRED_COLUMNS = ("experiment", "model", "data", "seed", "status", "N_nonembedding", "D", "val_loss")


def _objective(theta: np.ndarray, lx: np.ndarray, ly: np.ndarray, delta: float):
    """Summed Huber loss of log L̂ − log y and its gradient, θ = (a, α, e)."""
    a, alpha, e = theta
    u = a - alpha * lx
    pred = np.logaddexp(u, e)  # log L̂ = logsumexp(a − α log x, e), Hoffmann et al. App. D.2
    r = pred - ly
    c = np.clip(r, -delta, delta)  # Huber'(r); Huber(r) = c·(r − c/2) in both branches
    w = np.exp(u - pred)  # ∂ log L̂ / ∂u; 1 − w is ∂ log L̂ / ∂e
    cw = c * w
    s = cw.sum()
    return (c * (r - 0.5 * c)).sum(), np.array([s, -(cw * lx).sum(), c.sum() - s])


def _multistart(lx: np.ndarray, ly: np.ndarray, starts: np.ndarray, delta: float):
    """Minimise from every start; return (final θ per start, final objective per start)."""
    thetas = np.empty_like(starts, dtype=float)
    losses = np.empty(len(starts))
    for i, start in enumerate(starts):
        res = minimize(_objective, start, args=(lx, ly, delta), jac=True, method="L-BFGS-B",
                       options=_LBFGS_OPTIONS)
        thetas[i] = res.x
        losses[i] = res.fun if np.all(np.isfinite(res.x)) and np.isfinite(res.fun) else np.inf
    return thetas, losses


def _distinct_optima(thetas: np.ndarray, losses: np.ndarray, k: int) -> np.ndarray:
    """The best optimum and up to k − 1 other local optima (worse basins), best first.

    Restarting a resample from the full-data optima is fast; the other basins guard
    against a resample whose best one differs. Ends within 0.1% of the best are taken
    as points of the same flat valley, where L-BFGS-B stops short, not as other basins:
    restarting from them would only cost time.
    """
    order = np.argsort(losses, kind="stable")
    best = losses[order[0]]
    picked = [thetas[order[0]]]
    for i in order[1:]:
        if len(picked) == k or not np.isfinite(losses[i]):
            break
        if losses[i] > best * (1 + _BASIN_RTOL) + _TIE_ATOL and all(
                np.max(np.abs(thetas[i] - p)) > 1e-2 for p in picked):
            picked.append(thetas[i])
    return np.array(picked)


def _grid_starts(grid: dict[str, Sequence[float]] | None) -> tuple[np.ndarray, np.ndarray]:
    """Starts as rows (a, α, e) and whether each lies on the grid's edge."""
    grid = DEFAULT_GRID if grid is None else grid
    try:
        axes = [np.asarray(grid[k], dtype=float) for k in ("a", "alpha", "e")]
    except KeyError as missing:
        raise ValueError(f"fit grid needs keys a, alpha, e; missing {missing}") from None
    if any(ax.size == 0 for ax in axes):
        raise ValueError("fit grid has an empty axis")
    starts = np.array(list(itertools.product(*axes)))
    edge = np.zeros(len(starts), dtype=bool)
    for j, ax in enumerate(axes):
        if ax.size > 1:  # a single value is no range, so no edge
            edge |= (starts[:, j] == ax.min()) | (starts[:, j] == ax.max())
    return starts, edge


def _check_xy(x, y, min_distinct: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x and y must be finite and positive for a log-space fit")
    if np.unique(x).size < min_distinct:
        raise ValueError(f"need at least {min_distinct} distinct x values, got {np.unique(x).size}")
    return x, y


def _goodness(lx, ly, pred, objective: float | None) -> dict[str, Any]:
    resid = ly - pred
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    return {
        "rmse_log": float(np.sqrt(np.mean(resid ** 2))),
        "r2_log": 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else None,
        "n_points": int(lx.size),
        "huber_objective": objective,
    }


def _params(theta: np.ndarray) -> dict[str, float]:
    a, alpha, e = theta
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": float(alpha)}


def _loglinear(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Pure power law log L = a − α log x by least squares (Kaplan et al. 2020, Eq. 1.1–1.2)."""
    slope, intercept = np.polyfit(lx, ly, 1)
    return np.array([intercept, -slope, -np.inf])


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
                "goodness": _goodness(lx, ly, pred, None)}
    starts, edge = _grid_starts(grid)
    thetas, losses = _multistart(lx, ly, starts, delta)
    best = int(np.argmin(losses))
    if not np.isfinite(losses[best]):
        raise ValueError("the fit did not converge from any start of the grid")
    reached = losses <= losses[best] + max(_TIE_RTOL * losses[best], _TIE_ATOL)
    # Prefer an interior start among those reaching the optimum, so the flag means what it says.
    best_start = int(np.flatnonzero(reached & ~edge)[0]) if np.any(reached & ~edge) else best
    theta = thetas[best]
    pred = np.logaddexp(theta[0] - theta[1] * lx, theta[2])
    a0, alpha0, e0 = starts[best_start]
    return {
        "params": _params(theta),
        "best_start_on_grid_edge": bool(edge[best_start]),
        "best_start": {"a": float(a0), "alpha": float(alpha0), "e": float(e0)},
        "goodness": _goodness(lx, ly, pred, float(losses[best])),
    }


def bootstrap_power_law(x, y, groups=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                        irreducible: bool = True, grid: dict[str, Sequence[float]] | None = None,
                        n_starts: int = 1, delta: float = HUBER_DELTA) -> dict[str, Any]:
    """Percentile intervals for E, A, α from resampling groups (cells) with replacement.

    All points of one group (e.g. the seeds of one cell; by default one x value) are drawn
    together. Each resample is refitted from the full-data optimum and up to ``n_starts``
    other local optima of the grid fit; resamples with fewer than 3 distinct x (2 for a
    pure power law) or a non-finite optimum are counted in ``n_failed`` and left out.
    Deterministic given ``seed``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    min_distinct = 3 if irreducible else 2
    x, y = _check_xy(x, y, min_distinct)
    groups = x if groups is None else np.asarray(groups)
    if groups.shape != x.shape:
        raise ValueError(f"groups has {groups.size} entries for {x.size} points")
    _, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(inverse.max() + 1)]
    lx, ly = np.log(x), np.log(y)
    if irreducible:
        starts, _ = _grid_starts(grid)
        thetas, losses = _multistart(lx, ly, starts, delta)
        starts = _distinct_optima(thetas, losses, 1 + n_starts)

    rng = np.random.default_rng(seed)
    samples, failed = [], 0
    for _ in range(n_boot):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        if np.unique(x[idx]).size < min_distinct:
            failed += 1
            continue
        if irreducible:
            t, l = _multistart(lx[idx], ly[idx], starts, delta)
            theta = t[int(np.argmin(l))] if np.isfinite(l.min()) else np.full(3, np.nan)
        else:
            theta = _loglinear(lx[idx], ly[idx])
        params = _params(theta)
        if not all(math.isfinite(v) for v in params.values()):
            failed += 1
            continue
        samples.append(params)
    table = pd.DataFrame(samples, columns=["E", "A", "alpha"])
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    ci = {k: ([float(v) for v in np.percentile(table[k], q)] if len(table) else None) for k in table}
    return {"ci": ci, "level": level, "n_bootstrap": n_boot, "n_failed": failed, "samples": table}


def _cell_id(row) -> str:
    return f"{row['model']}/{row['data']}/{row['seed']}"


def _exclusions(runs: pd.DataFrame) -> list[dict[str, str]]:
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
        excluded.append({"cell": _cell_id(row), "reason": reason})
    return excluded


def _fit_law(law, x_col, fixed_col, usable, excluded, experiment, n_boot, seed, level):
    """One law entry of fits.json: x_col varies, fixed_col held at its largest value."""
    head = {"law": law, "form": f"L = E + A * {law[2]}^-alpha", "x": x_col, "y": "val_loss"}
    if usable.empty:
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: no usable cells"}
    fixed = usable[fixed_col].max()
    cells = usable[usable[fixed_col] == fixed]
    selection = f"{fixed_col} = {fixed:.0f}"
    n_x = cells[x_col].nunique()
    if n_x < 3:
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: only {n_x} distinct "
                f"{x_col} value(s) among usable cells at {selection} (need 3)"}
    x, y = cells[x_col].to_numpy(float), cells["val_loss"].to_numpy(float)
    fit = fit_power_law(x, y)
    boot = bootstrap_power_law(x, y, groups=x, n_boot=n_boot, seed=seed, level=level)
    warnings = []
    if n_x == 3:  # a resample keeping 3 distinct x is the full data again
        warnings.append(f"only 3 distinct {x_col} values for 3 parameters: "
                        "the interval understates the uncertainty")
    if boot["n_failed"] > n_boot / 2:
        warnings.append(f"{boot['n_failed']} of {n_boot} bootstrap resamples had too few distinct {x_col} values")
    if fit["best_start_on_grid_edge"]:
        warnings.append("the best start lies on the edge of the initialisation grid: widen it")
    return {**head, "selection": selection, "params": fit["params"], "ci": boot["ci"], "ci_level": level,
            "n_bootstrap": n_boot, "n_bootstrap_failed": boot["n_failed"], "goodness": fit["goodness"],
            "best_start_on_grid_edge": fit["best_start_on_grid_edge"], "best_start": fit["best_start"],
            "cells_used": [_cell_id(r) for _, r in cells.iterrows()], "cells_excluded": excluded,
            "warnings": warnings}


def fit_experiment(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                   experiment: str | None = None) -> dict[str, Any]:
    """The content of fits.json for one experiment: L(N) at the largest D, L(D) at the largest N.

    Laws that cannot be fitted (fewer than 3 distinct x) are recorded as skipped with a
    warning on stderr; the others are still fitted.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")
    names = sorted(runs["experiment"].astype(str).unique())
    if experiment is None:
        if len(names) != 1:
            raise ValueError(f"runs table holds {len(names)} experiments {names}; name one to fit")
        experiment = names[0]
    runs = runs[runs["experiment"].astype(str) == experiment]
    if runs.empty:
        raise ValueError(f"runs table has no cells of experiment {experiment!r}")
    excluded = _exclusions(runs)
    bad = {e["cell"] for e in excluded}
    usable = runs[[_cell_id(r) not in bad for _, r in runs.iterrows()]].copy()
    usable["val_loss"] = usable["val_loss"].astype(float)
    laws = {}
    # Kaplan et al. (2020) fit L(N) on non-embedding parameters, Eq. 1.1; L(D), Eq. 1.2.
    for law, x_col, fixed_col in (("L(N)", "N_nonembedding", "D"), ("L(D)", "D", "N_nonembedding")):
        entry = _fit_law(law, x_col, fixed_col, usable, excluded, experiment, n_boot, seed, level)
        if "skipped" in entry:
            print(f"warning: {entry['skipped']}; skipped", file=sys.stderr)
        for message in entry.get("warnings", []):
            print(f"warning: experiment {experiment!r}, law {law}: {message}", file=sys.stderr)
        laws[law] = entry
    optimal = None
    if "optimal_loss" in runs.columns:
        values = pd.to_numeric(runs["optimal_loss"], errors="coerce").to_numpy(float)
        values = values[np.isfinite(values)]
        optimal = float(np.median(values)) if values.size else None
    return {
        "format_version": FORMAT_VERSION,
        "experiment": experiment,
        "optimal_loss": optimal,
        "laws": laws,
        "provenance": provenance(config={"n_bootstrap": n_boot, "seed": seed, "ci_level": level,
                                         "huber_delta": HUBER_DELTA,
                                         "grid": {k: [float(v) for v in g] for k, g in DEFAULT_GRID.items()}}),
    }


def write_fits(runs_csv, out_json, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
               experiment: str | None = None) -> dict[str, Any]:
    """Read runs.csv, fit its experiment, write fits.json atomically."""
    fits = fit_experiment(pd.read_csv(runs_csv), n_boot=n_boot, seed=seed, level=level, experiment=experiment)
    fits["provenance"]["runs"] = str(runs_csv)
    atomic_write_json(out_json, fits)
    return fits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="runs.csv written by workflow_scripts.aggregate")
    parser.add_argument("--out", required=True, help="where to write fits.json")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    parser.add_argument("--experiment", default=None, help="experiment to fit if runs.csv holds several")
    args = parser.parse_args(argv)
    try:
        fits = write_fits(args.runs, args.out, args.bootstrap, args.seed, args.level, args.experiment)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    for law, entry in fits["laws"].items():
        if "skipped" in entry:
            print(f"{law}: skipped")
        else:
            p, ci = entry["params"], entry["ci"]["alpha"]
            print(f"{law}: E={p['E']:.4g} A={p['A']:.4g} alpha={p['alpha']:.4f} "
                  f"{entry['ci_level']:.0%} CI {ci} ({len(entry['cells_used'])} cells)")


if __name__ == "__main__":
    main()
