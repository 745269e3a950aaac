"""The parametric law L(N, D) = E + A/N^α + B/D^β and its compute-optimal allocation.

Chinchilla's approach 3 (Hoffmann et al. 2022, §3.3, Eq. 2 and App. D.2) as replicated by
Besiroglu et al. (Epoch AI, 2024): the summed Huber(δ = 1e-3) loss between log L and
logsumexp(a − α log N, b − β log D, e) is minimised with L-BFGS-B from every start of the
full grid; bootstrap intervals resample cells (rows sharing N and D, i.e. seeds) whole.
With C = 6ND, the loss-minimising allocation is N_opt = G (C/6)^a, D_opt = G⁻¹ (C/6)^b
with a = β/(α+β), b = α/(α+β) and G = (αA/(βB))^(1/(α+β)) (Hoffmann et al., Eq. 4).
``entry`` is the law's fits.json entry over every usable cell, with the allocation as the
file's ``compute_optimal``; ``fit_table`` fits any table's columns (the ``--table`` mode of
``workflow_scripts.analysis.fit.experiment``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import stats
from workflow_scripts.analysis.fit.table_checks import check_fit_table, read_fit_table
from workflow_scripts.analysis.fit import laws
from workflow_scripts.analysis.fit import quality
from workflow_scripts.analysis.fit.isoflops import fit_isoflops
from workflow_scripts.io import atomic_write_json, provenance

LAW = "L(N,D)"

# θ's layout in the engine: (a_N, a_D, α_N, α_D, e).
NAMES = ("a", "b", "alpha", "beta", "e")
# The initialisation grid of Hoffmann et al. (2022), App. D.2: 6 × 6 × 5 × 5 × 5 = 4,500 starts.
DEFAULT_GRID = {
    "a": tuple(np.arange(0.0, 25.01, 5.0)),
    "b": tuple(np.arange(0.0, 25.01, 5.0)),
    "alpha": tuple(np.arange(0.0, 2.01, 0.5)),
    "beta": tuple(np.arange(0.0, 2.01, 0.5)),
    "e": tuple(np.arange(-1.0, 1.01, 0.5)),
}
# Five parameters: fewer distinct (N, D) cells cannot identify them.
MIN_CELLS = 5
PARAMS = ("E", "A", "B", "alpha", "beta")
OPTIMAL = ("a", "b", "G")


def law(params: dict[str, float], n, d) -> np.ndarray:
    """L = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 2)."""
    n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
    return params["E"] + params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"]


def params_of(theta: np.ndarray) -> dict[str, float]:
    """Named parameters {E, A, B, alpha, beta} of θ = (a, b, α, β, e)."""
    a, b, alpha, beta, e = (float(v) for v in theta)
    with np.errstate(over="ignore"):
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
                "alpha": alpha, "beta": beta}


def compute_optimal(params: dict[str, float]) -> dict[str, float | None]:
    """Exponents a, b (N_opt ∝ C^a, D_opt ∝ C^b) and coefficient G of Hoffmann et al. (2022), Eq. 4."""
    alpha, beta = params["alpha"], params["beta"]
    if not (alpha > 0 and beta > 0):  # no trade-off between N and D: no finite optimum
        return {"a": None, "b": None, "G": None}
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        log_g = (np.log(alpha) + np.log(params["A"]) - np.log(beta) - np.log(params["B"])) / (alpha + beta)
        g = float(np.exp(log_g))
    return {"a": beta / (alpha + beta), "b": alpha / (alpha + beta), "G": g if np.isfinite(g) else None}


def check_points(n, d, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of N, D, L as floats; a ValueError naming the first bad value otherwise."""
    arrays = stats.positive_arrays(("N", "D", "loss"), (n, d, loss))
    n, d, _ = arrays
    cells = np.unique(np.column_stack([n, d]), axis=0).shape[0]
    if np.unique(n).size < 2 or np.unique(d).size < 2 or cells < MIN_CELLS:
        raise ValueError(f"got {np.unique(n).size} distinct N, {np.unique(d).size} distinct D and {cells} "
                         f"(N, D) cells; need at least 2 distinct N, 2 distinct D and {MIN_CELLS} cells")
    return tuple(arrays)


def _identifiable(n: np.ndarray, d: np.ndarray):
    """Whether a resample's drawn rows still hold enough distinct N, D and cells."""
    cell = hf.group_index(np.column_stack([n, d]))[0]

    def valid(mask: np.ndarray) -> bool:
        return (np.unique(n[mask]).size >= 2 and np.unique(d[mask]).size >= 2
                and np.unique(cell[mask]).size >= MIN_CELLS)
    return valid


def fit_parametric(n, d, loss, groups=None, n_boot: int = 0, seed: int = laws.DEFAULTS["seed"],
                   level: float = laws.DEFAULTS["level"], grid: dict[str, Sequence[float]] | None = None,
                   delta: float = hf.HUBER_DELTA, n_polish: int = 1, workers: int = 1,
                   screen_rows: int | None = hf.SCREEN_ROWS) -> dict[str, Any]:
    """Fit L(N, D) = E + A/N^α + B/D^β from every grid start; bootstrap ``n_boot`` resamples.

    Returns ``params``, ``compute_optimal`` {a, b, G}, ``best_start_on_grid_edge`` (no
    interior start reached the best optimum: widen the grid), ``best_start``, ``goodness``,
    and with ``n_boot`` > 0 ``ci`` (percentile intervals of every parameter and of a, b, G),
    ``ci_level``, ``n_bootstrap``, ``n_bootstrap_failed`` and the bootstrap ``samples``.
    Groups default to the (N, D) cell: the seeds of one cell are drawn together.
    ``workers`` processes share the grid and the resamples; above ``screen_rows`` rows the
    grid is searched on a subsample (``workflow_scripts.analysis.fit.huber.screened_fit``).
    """
    stats.check_level(level, n_boot)
    n, d, loss = check_points(n, d, loss)
    lx, ly = np.log(np.vstack([n, d])), np.log(loss)
    starts, edge = hf.grid_starts(DEFAULT_GRID if grid is None else grid, NAMES)
    full = hf.fit_grid(lx, ly, starts, edge, delta, workers=workers, screen_rows=screen_rows)
    params = params_of(full["theta"])
    result = {
        "params": params,
        "compute_optimal": compute_optimal(params),
        "best_start_on_grid_edge": full["on_edge"],
        "best_start": dict(zip(NAMES, (float(v) for v in starts[full["start"]]))),
        "goodness": stats.goodness(ly, hf.predict(full["theta"], lx), full["objective"]),
    }
    if n_boot == 0:
        return result
    groups = np.column_stack([n, d]) if groups is None else np.asarray(groups)
    if len(groups) != n.size:
        raise ValueError(f"groups has {len(groups)} entries for {n.size} points")
    thetas, failed = hf.bootstrap_grid(lx, ly, groups, starts, full, n_boot, seed, _identifiable(n, d), delta,
                                       n_polish=n_polish, workers=workers)
    rows = []
    for theta in thetas:
        p = params_of(theta)
        if not all(np.isfinite(v) for v in p.values()):  # exp(a) overflowed: no usable law
            failed += 1
            continue
        rows.append({**p, **compute_optimal(p)})
    samples = pd.DataFrame(rows, columns=[*PARAMS, *OPTIMAL], dtype=float)
    return {**result, "ci": stats.percentile_ci(samples, level), "ci_level": level, "n_bootstrap": n_boot,
            "n_bootstrap_failed": failed, "samples": samples}


def entry(job: laws.Job) -> dict[str, Any]:
    """The L(N,D) entry of fits.json over every usable cell, holding under ``compute_optimal``
    the allocation it implies (or why it was skipped)."""
    usable = job.usable
    try:
        check_points(usable["N_nonembedding"], usable["D"], usable["val_loss"])
    except ValueError as why:
        skipped = job.skipped(LAW, f"usable cells: {why}")
        return {**skipped, "compute_optimal": dict(skipped)}
    head = {"law": LAW, "form": "L = E + A * N^-alpha + B * D^-beta", "x": ["N_nonembedding", "D"],
            "y": "val_loss"}
    n, d, loss = usable["N_nonembedding"], usable["D"], usable["val_loss"]
    fit = fit_parametric(n, d, loss, n_boot=job.n_boot, seed=job.seed, level=job.level,
                         grid=job.parametric_grid, workers=job.workers)
    ci = fit.get("ci", {})
    # Residual signs ordered along compute C = 6ND, the axis the law is extrapolated along.
    goodness = {**fit["goodness"], **quality.residual_record(
        usable["C"].to_numpy(float), np.log(loss.to_numpy(float)), np.log(law(fit["params"], n, d)))}
    fit = {**fit, "goodness": goodness, "ci": {k: ci.get(k) for k in PARAMS},
           "n_bootstrap_failed": fit.get("n_bootstrap_failed", 0)}
    result = laws.law_entry(head, "all usable cells", fit, usable, job, [], "distinct N, D or cells")
    result["extrapolation"] = laws.extrapolation(
        usable, lambda kept: fit_parametric(kept["N_nonembedding"], kept["D"], kept["val_loss"],
                                            grid=job.parametric_grid, workers=job.workers)["params"],
        lambda params, held: law(params, held["N_nonembedding"], held["D"]), job.n_holdout)
    result["compute_optimal"] = {"law": LAW, "form": "N_opt = G * (C/6)^a, D_opt = (C/6)^b / G, C = 6ND",
                                 **fit["compute_optimal"], "ci": {k: ci.get(k) for k in OPTIMAL},
                                 "ci_level": job.level}
    return result


def summary(result: dict[str, Any]) -> str:
    cells = len(result["cells_used"])
    return f"{describe(result['params'], result['ci'], result['ci_level'])} ({cells} cells)"


REGISTERED = laws.Law(LAW, entry, summary, sections=("compute_optimal",))


def describe(params: dict[str, float], ci: dict[str, Any] | None, level: float) -> str:
    """One line: the parameters and the exponents' intervals."""
    ci = ci or {}
    text = " ".join(f"{k}={params[k]:.4g}" for k in PARAMS)
    return text + "".join(f" {level:.0%} CI {k} {ci[k]}" for k in ("alpha", "beta") if ci.get(k))


def fit_table(table: pd.DataFrame, n: str, d: str, loss: str, c: str | None, n_boot: int, seed: int,
              level: float) -> dict[str, Any]:
    """fits.json content for any table: ``parametric`` (flat parameters, ``ci``, grid flag),
    ``compute_optimal`` {a, b, G, ci} and, given a compute column, ``isoflops`` (approach 2)."""
    fit = fit_parametric(table[n], table[d], table[loss], n_boot=n_boot, seed=seed, level=level)
    ci = fit.get("ci", {})
    fits = {
        "format_version": 1,
        "columns": {"n": n, "d": d, "loss": loss, "c": c},
        "parametric": {"form": "L = E + A / N^alpha + B / D^beta", **fit["params"],
                       "ci": {k: ci.get(k) for k in PARAMS}, "ci_level": level, "n_bootstrap": n_boot,
                       "n_bootstrap_failed": fit.get("n_bootstrap_failed", 0),
                       "best_start_on_grid_edge": fit["best_start_on_grid_edge"],
                       "best_start": fit["best_start"],
                       "goodness": fit["goodness"]},
        "compute_optimal": {"form": "N_opt = G * (C/6)^a, D_opt = (C/6)^b / G", **fit["compute_optimal"],
                            "ci": {k: ci.get(k) for k in OPTIMAL}, "ci_level": level},
    }
    if c is not None:
        iso = fit_isoflops(table[n], table[c], table[loss], n_boot=n_boot, seed=seed, level=level)
        fits["isoflops"] = {k: v for k, v in iso.items() if k != "samples"}
    return fits


def write_table_fits(path, out, n: str, d: str, loss: str, c: str | None, n_boot: int, seed: int,
                     level: float) -> dict[str, Any]:
    """Read the table, fit it, write fits.json atomically with provenance."""
    columns = {"n": n, "d": d, "loss": loss, **({"c": c} if c else {})}
    table = read_fit_table(path, columns)
    check_fit_table(table[n], table[d], table[loss], names=(n, d, loss))
    fits = fit_table(table, n, d, loss, c, n_boot, seed, level)
    fits["provenance"] = provenance(config={"n_bootstrap": n_boot, "seed": seed, "ci_level": level,
                                            "huber_delta": hf.HUBER_DELTA,
                                            "grid": {k: [float(v) for v in g]
                                                     for k, g in DEFAULT_GRID.items()}},
                                    table=str(path))
    atomic_write_json(out, fits)
    return fits


def print_summary(fits: dict[str, Any]) -> None:
    p, opt = fits["parametric"], fits["compute_optimal"]
    print(f"L(N,D): {describe(p, p['ci'], p['ci_level'])}")
    if opt["a"] is not None:
        print(f"compute-optimal: N_opt ~ C^{opt['a']:.3f} {opt['ci'].get('a')}, D_opt ~ C^{opt['b']:.3f}")
    if "isoflops" in fits:
        iso = fits["isoflops"]
        print(f"IsoFLOP: N_opt ~ C^{iso['a']:.3f} {iso['ci'].get('a')}, D_opt ~ C^{iso['b']:.3f}"
              if "a" in iso else f"IsoFLOP: skipped ({iso['skipped']})")
