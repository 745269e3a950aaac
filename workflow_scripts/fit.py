"""Fit scaling laws to one experiment's runs, or to any table, with bootstrap intervals.

Per experiment: L(N) = E + A·N^(−α) at the largest D, L(D) likewise at the largest N, L(C)
on the compute-efficient frontier, L(N, D) = E + A/N^α + B/D^β over every usable cell with the
compute-optimal allocation it implies (``workflow_scripts.parametric``), IsoFLOP minima on an
IsoFLOP grid; which cells each law uses, and the extrapolation check, are ``workflow_scripts.laws``.
The method is Hoffmann et al. (2022, §3.3 and App. D.2) as replicated by Besiroglu et al.
(Epoch AI, 2024): fit log L with the logsumexp parameterisation, minimise the Huber loss
(δ = 1e-3) of the log residuals summed over points with L-BFGS-B from every start of a grid,
keep the best (``workflow_scripts.huber_fit``); intervals come from resampling cells with
replacement. Run by hand or from Snakemake as::

    python -m workflow_scripts.fit --runs results/default/runs.csv --out results/default/fits.json
    python -m workflow_scripts.fit --table runs.csv --n N --d D --loss loss [--c C] --out fits.json
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd

from workflow_scripts import huber_fit as hf
from workflow_scripts import laws, parametric
from workflow_scripts.io import atomic_write_json, provenance

FORMAT_VERSION = 1
HUBER_DELTA = hf.HUBER_DELTA
NAMES = ("a", "alpha", "e")  # θ's layout in the engine for one term
# The initialisation grid of Hoffmann et al. (2022), App. D.2, restricted to one term.
DEFAULT_GRID = {
    "alpha": tuple(np.arange(0.0, 2.01, 0.5)),
    "e": tuple(np.arange(-1.0, 1.01, 0.5)),
    "a": tuple(np.arange(0.0, 25.01, 5.0)),
}
REQUIRED_COLUMNS = ("experiment", "model", "data", "seed", "status", "N_nonembedding", "D", "C", "val_loss")


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
                "goodness": hf.goodness(ly, pred, None)}
    starts, edge = _grid(grid)
    full = hf.fit_grid(lx[None, :], ly, starts, edge, delta)
    return {
        "params": _params(full["theta"]),
        "best_start_on_grid_edge": full["on_edge"],
        "best_start": dict(zip(NAMES, (float(v) for v in starts[full["start"]]))),
        "goodness": hf.goodness(ly, hf.predict(full["theta"], lx[None, :]), full["objective"]),
    }


def bootstrap_power_law(x, y, groups=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                        irreducible: bool = True, grid: dict[str, Sequence[float]] | None = None,
                        n_starts: int = 1, delta: float = HUBER_DELTA) -> dict[str, Any]:
    """Percentile intervals for E, A, α from resampling groups (cells) with replacement.

    All points of one group (e.g. the seeds of one cell; by default one x value) are drawn
    together. Each resample is refitted from the full-data optimum, up to ``n_starts``
    other local optima of the grid fit and the grid start best on that resample; resamples
    with fewer than 3 distinct x (2 for a pure power law) or a non-finite optimum are
    counted in ``n_failed`` and left out. Deterministic given ``seed``.
    """
    hf.check_level(level, n_boot)
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
    ci = hf.percentile_ci(table, level) if len(table) else {k: None for k in table}
    return {"ci": ci, "level": level, "n_bootstrap": n_boot, "n_failed": failed, "samples": table}


def _fit_law(law, usable, excluded, experiment, n_boot, seed, level, irreducible=True, n_holdout=1):
    """One single-variable law's entry of fits.json, on the cells ``laws.single_cells`` selects."""
    cells, x_col, selection = laws.single_cells(law, usable)
    form = f"L = {'E + ' if irreducible else ''}A * {law[2]}^-alpha"
    head = {"law": law, "form": form, "x": x_col, "y": "val_loss"}
    if usable.empty:
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: no usable cells"}
    n_x, need = cells[x_col].nunique(), 3 if irreducible else 2
    if n_x < need:
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: only {n_x} distinct "
                f"{x_col} value(s) among usable cells at {selection} (need {need})"}
    x, y = cells[x_col].to_numpy(float), cells["val_loss"].to_numpy(float)
    fit = fit_power_law(x, y, irreducible=irreducible)
    boot = bootstrap_power_law(x, y, groups=x, n_boot=n_boot, seed=seed, level=level, irreducible=irreducible)
    warnings = []
    if n_x == need:  # a resample keeping `need` distinct x is the full data again
        warnings.append(f"only {need} distinct {x_col} values for {need} parameters: "
                        "the interval understates the uncertainty")
    fit = {**fit, "ci": boot["ci"], "n_bootstrap_failed": boot["n_failed"]}
    entry = _entry(head, selection, fit, cells, excluded, n_boot, level, warnings, f"distinct {x_col} values")
    entry["extrapolation"] = laws.extrapolation(
        cells, lambda kept: fit_power_law(kept[x_col], kept["val_loss"], irreducible=irreducible)["params"],
        lambda params, held: laws.power_law(params, held[x_col]), n_holdout)
    return entry


def _entry(head, selection, fit, cells, excluded, n_boot, level, warnings, needed) -> dict[str, Any]:
    """A fitted law's entry of fits.json, with the warnings every law shares."""
    if fit["n_bootstrap_failed"] > n_boot / 2:
        warnings.append(f"{fit['n_bootstrap_failed']} of {n_boot} bootstrap resamples had too few {needed}")
    if fit["best_start_on_grid_edge"]:
        warnings.append("the best start lies on the edge of the initialisation grid: widen it")
    return {**head, "selection": selection, "params": fit["params"], "ci": fit["ci"], "ci_level": level,
            "n_bootstrap": n_boot, "n_bootstrap_failed": fit["n_bootstrap_failed"],
            "goodness": fit["goodness"],
            "best_start_on_grid_edge": fit["best_start_on_grid_edge"], "best_start": fit["best_start"],
            "cells_used": [laws.cell_id(r) for _, r in cells.iterrows()], "cells_excluded": excluded,
            "warnings": warnings}


def _fit_parametric_law(usable, excluded, experiment, n_boot, seed, level, grid=None, n_holdout=1):
    """The L(N,D) entry of fits.json (Hoffmann et al. 2022, Eq. 2) over every usable cell, and
    the compute-optimal allocation it implies (or why it was skipped)."""
    law = "L(N,D)"
    try:
        parametric.check_points(usable["N_nonembedding"], usable["D"], usable["val_loss"])
    except ValueError as why:
        reason = f"experiment {experiment!r}, law {law}: usable cells: {why}"
        return {"law": law, "skipped": reason}, {"law": law, "skipped": reason}
    head = {"law": law, "form": "L = E + A * N^-alpha + B * D^-beta", "x": ["N_nonembedding", "D"],
            "y": "val_loss"}
    fit = parametric.fit_parametric(usable["N_nonembedding"], usable["D"], usable["val_loss"], n_boot=n_boot,
                                    seed=seed, level=level, grid=grid)
    ci = fit.get("ci", {})
    fit = {**fit, "ci": {k: ci.get(k) for k in parametric.PARAMS},
           "n_bootstrap_failed": fit.get("n_bootstrap_failed", 0)}
    entry = _entry(head, "all usable cells", fit, usable, excluded, n_boot, level, [],
                   "distinct N, D or cells")
    entry["extrapolation"] = laws.extrapolation(
        usable, lambda kept: parametric.fit_parametric(kept["N_nonembedding"], kept["D"], kept["val_loss"],
                                                       grid=grid)["params"],
        lambda params, held: laws.parametric_law(params, held["N_nonembedding"], held["D"]), n_holdout)
    optimal = {"law": law, "form": "N_opt = G * (C/6)^a, D_opt = (C/6)^b / G, C = 6ND",
               **fit["compute_optimal"],
               "ci": {k: ci.get(k) for k in parametric.OPTIMAL}, "ci_level": level}
    return entry, optimal


def _report(experiment: str, entry: dict[str, Any]) -> None:
    """A skipped law or a fit's warnings, one line each on stderr."""
    if "skipped" in entry:
        print(f"warning: {entry['skipped']}; skipped", file=sys.stderr)
    check = entry.get("extrapolation", {})
    extra = [f"extrapolation check {check['skipped']}"] if "skipped" in check else []
    for message in entry.get("warnings", []) + extra:
        print(f"warning: experiment {experiment!r}, law {entry['law']}: {message}", file=sys.stderr)


def fit_experiment(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                   experiment: str | None = None, parametric_grid: dict[str, Sequence[float]] | None = None,
                   law_names: Sequence[str] | None = None, irreducible: bool = True,
                   n_holdout: int = 1) -> dict[str, Any]:
    """The content of fits.json for one experiment: L(N) at the largest D, L(D) at the largest N,
    L(C) on the compute-efficient frontier, L(N,D) over every usable cell with the compute-optimal
    allocation it implies, and on an IsoFLOP grid the IsoFLOP minima (``laws.LAWS``).

    ``law_names`` picks the laws (default: all that apply); ``irreducible=False`` forces E = 0
    in the single-variable laws. Each fitted law but isoflop carries ``extrapolation``: the law
    refitted without the cells at the ``n_holdout`` largest compute values, which it predicts.
    Laws that cannot be fitted (too few distinct x; for L(N,D) fewer than 2 distinct N, 2
    distinct D or 5 cells) are recorded as skipped with a warning on stderr; the others are
    still fitted. ``parametric_grid`` replaces L(N,D)'s initialisation grid (tests).
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
    excluded = laws.exclusions(runs)
    bad = {e["cell"] for e in excluded}
    usable = runs[[laws.cell_id(r) not in bad for _, r in runs.iterrows()]].copy()
    usable["val_loss"] = usable["val_loss"].astype(float)
    fitted = {}
    compute_optimal = {"law": "L(N,D)", "skipped": f"experiment {experiment!r}: law L(N,D) not requested"}
    for law in laws.requested(runs, law_names):
        if law in laws.SINGLE:
            fitted[law] = _fit_law(law, usable, excluded, experiment, n_boot, seed, level, irreducible, n_holdout)
        elif law == "L(N,D)":
            fitted[law], compute_optimal = _fit_parametric_law(usable, excluded, experiment, n_boot, seed, level,
                                                               parametric_grid, n_holdout)
        else:
            fitted[law] = laws.isoflop_entry(usable, excluded, experiment, n_boot, seed, level)
        _report(experiment, fitted[law])
    optimal = None
    if "optimal_loss" in runs.columns:
        values = pd.to_numeric(runs["optimal_loss"], errors="coerce").to_numpy(float)
        values = values[np.isfinite(values)]
        optimal = float(np.median(values)) if values.size else None
    return {
        "format_version": FORMAT_VERSION,
        "experiment": experiment,
        "optimal_loss": optimal,
        "laws": fitted,
        "compute_optimal": compute_optimal,
        "provenance": provenance(config={"n_bootstrap": n_boot, "seed": seed, "ci_level": level,
                                         "laws": list(fitted), "irreducible": irreducible,
                                         "n_holdout": n_holdout,
                                         "huber_delta": HUBER_DELTA,
                                         "grid": _grid_record(DEFAULT_GRID),
                                         "grid_parametric": _grid_record(parametric.DEFAULT_GRID)}),
    }


def _grid_record(grid) -> dict[str, list[float]]:
    return {k: [float(v) for v in g] for k, g in grid.items()}


def write_fits(runs_csv, out_json, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
               experiment: str | None = None, **options) -> dict[str, Any]:
    """Read runs.csv, fit its experiment (``options`` as ``fit_experiment``'s), write fits.json atomically."""
    fits = fit_experiment(pd.read_csv(runs_csv), n_boot=n_boot, seed=seed, level=level, experiment=experiment,
                          **options)
    fits["provenance"]["runs"] = str(runs_csv)
    atomic_write_json(out_json, fits)
    return fits


def _print_laws(fits: dict[str, Any]) -> None:
    for law, entry in fits["laws"].items():
        if "skipped" in entry:
            print(f"{law}: skipped")
            continue
        if law == "isoflop":
            print(f"{law}: N_opt ~ C^{entry['a']:.3f} {entry['ci'].get('a')}, D_opt ~ C^{entry['b']:.3f}")
            continue
        p, level, n_cells = entry["params"], entry["ci_level"], len(entry["cells_used"])
        if law == "L(N,D)":
            print(f"{law}: {parametric.describe(p, entry['ci'], level)} ({n_cells} cells)")
        else:
            print(f"{law}: E={p['E']:.4g} A={p['A']:.4g} alpha={p['alpha']:.4f} "
                  f"{level:.0%} CI {entry['ci']['alpha']} ({n_cells} cells)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", help="runs.csv written by workflow_scripts.aggregate")
    source.add_argument("--table", help="any CSV table: fit L(N, D) = E + A/N^alpha + B/D^beta to it")
    parser.add_argument("--n", help="--table: column of model sizes N")
    parser.add_argument("--d", help="--table: column of data sizes D (tokens)")
    parser.add_argument("--loss", help="--table: column of final losses")
    parser.add_argument("--c", help="--table: column of compute budgets C; adds the IsoFLOP fit (approach 2)")
    parser.add_argument("--out", required=True, help="where to write fits.json")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    parser.add_argument("--experiment", default=None, help="experiment to fit if runs.csv holds several")
    parser.add_argument("--laws", type=lambda v: [x for x in v.split(",") if x], default=None,
                        help=f"--runs: comma-separated laws among {','.join(laws.LAWS)} (default: all that apply)")
    parser.add_argument("--no-irreducible", dest="irreducible", action="store_false",
                        help="--runs: force E = 0 in the single-variable laws L(N), L(D), L(C)")
    parser.add_argument("--holdout", type=int, default=1,
                        help="--runs: largest compute values held out by the extrapolation check (default: 1)")
    args = parser.parse_args(argv)
    if args.table and not (args.n and args.d and args.loss):
        parser.error("--table needs --n, --d and --loss (column names)")
    try:
        if args.table:
            fits = parametric.write_table_fits(args.table, args.out, args.n, args.d, args.loss, args.c,
                                               args.bootstrap, args.seed, args.level)
            parametric.print_summary(fits)
            return
        fits = write_fits(args.runs, args.out, args.bootstrap, args.seed, args.level, args.experiment,
                          law_names=args.laws, irreducible=args.irreducible, n_holdout=args.holdout)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    _print_laws(fits)
    opt = fits["compute_optimal"]
    if opt.get("a") is not None:
        print(f"compute-optimal (from L(N,D)): N_opt ~ C^{opt['a']:.3f} {opt['ci']['a']}, "
              f"D_opt ~ C^{opt['b']:.3f} {opt['ci']['b']}")


if __name__ == "__main__":
    main()
