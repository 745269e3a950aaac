"""IsoFLOP profiles: Chinchilla's approach 2 (Hoffmann et al. 2022, §3.2).

For each compute budget C, final loss is fitted by a parabola in log N; its minimum is the
compute-optimal size N_opt(C), and D_opt = C / (6 N_opt). Power laws N_opt = k_N C^a and
D_opt = k_D C^b are then fitted by least squares in log space. Bootstrap intervals resample
runs with replacement within each budget (the budgets are the design, fixed in advance),
refit every parabola and both power laws. ``entry`` is the isoflop law's fits.json entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import cell_ids
from workflow_scripts.analysis.fit import stats
from workflow_scripts.analysis.fit import laws

LAW = "isoflop"

MIN_SIZES = 3  # a parabola needs three distinct sizes
MIN_BUDGETS = 2  # a power law needs two minima


def check_runs(n, c, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of N, C, L as floats; a ValueError naming the first bad value otherwise."""
    return tuple(stats.positive_arrays(("N", "C", "loss"), (n, c, loss)))


def _budgets(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Budget of each run, equal budgets matched to 6 significant digits (floats from 6ND drift)."""
    rounded = np.array([float(f"{v:.6g}") for v in c])
    return np.unique(rounded, return_inverse=True)


def parabola_minimum(log_n: np.ndarray, loss: np.ndarray, w: np.ndarray | None = None):
    """(log N_opt, L at it) of loss ≈ p2 (log N)² + p1 log N + p0, or None if not convex."""
    p2, p1, p0 = np.polyfit(log_n, loss, 2, w=None if w is None else np.sqrt(w))
    if not p2 > 0:  # a flat or concave profile has no minimum
        return None
    x = -p1 / (2 * p2)
    return x, p0 + p1 * x + p2 * x * x


def _minima(log_n, loss, budget, n_budgets, w=None) -> np.ndarray:
    """Rows (budget number, log N_opt, L_min) for every budget whose profile has a minimum."""
    rows = []
    for k in range(n_budgets):
        mask = budget == k if w is None else (budget == k) & (w > 0)
        if np.unique(log_n[mask]).size < MIN_SIZES:
            continue
        found = parabola_minimum(log_n[mask], loss[mask], None if w is None else w[mask])
        if found is not None:
            rows.append((k, *found))
    return np.array(rows).reshape(-1, 3)


def _power_laws(log_c: np.ndarray, log_n_opt: np.ndarray) -> tuple[float, float, float, float]:
    """(a, log k_N, b, log k_D) of N_opt = k_N C^a, D_opt = C / (6 N_opt) = k_D C^b."""
    a, log_kn = np.polyfit(log_c, log_n_opt, 1)
    b, log_kd = np.polyfit(log_c, log_c - np.log(6.0) - log_n_opt, 1)
    return float(a), float(log_kn), float(b), float(log_kd)


def fit_isoflops(n, c, loss, n_boot: int = 0, seed: int = laws.DEFAULTS["seed"],
                 level: float = laws.DEFAULTS["level"]) -> dict[str, Any]:
    """Approach 2 on runs (N, C, final loss): per-budget minima, the exponents a, b and intervals.

    Budgets with fewer than 3 distinct sizes or a non-convex profile are listed in
    ``skipped_budgets`` and left out; with fewer than 2 minima left the result holds only
    ``skipped`` (why). ``minimum_inside_range`` says whether N_opt lies among the sizes run.
    """
    stats.check_level(level, n_boot)
    n, c, loss = check_runs(n, c, loss)
    values, budget = _budgets(c)
    log_n = np.log(n)
    found = _minima(log_n, loss, budget, len(values))
    kept = set(found[:, 0].astype(int))
    sizes = [np.unique(n[budget == k]).size for k in range(len(values))]
    skipped = [{"C": float(values[k]), "reason": f"{sizes[k]} distinct N (need {MIN_SIZES})"
                if sizes[k] < MIN_SIZES else "the profile is not convex in log N"}
               for k in range(len(values)) if k not in kept]
    if len(found) < MIN_BUDGETS:
        return {"skipped": f"{len(found)} compute budget(s) with an IsoFLOP minimum (need {MIN_BUDGETS})",
                "skipped_budgets": skipped}
    idx = found[:, 0].astype(int)
    log_c = np.log(values[idx])
    a, log_kn, b, log_kd = _power_laws(log_c, found[:, 1])
    budgets = [{"C": float(values[k]), "N_opt": float(np.exp(x)), "D_opt": float(values[k] / (6 * np.exp(x))),
                "loss_min": float(lmin), "n_runs": int((budget == k).sum()),
                "minimum_inside_range": bool(n[budget == k].min() <= np.exp(x) <= n[budget == k].max())}
               for k, x, lmin in zip(idx, found[:, 1], found[:, 2])]
    result = {"form": "N_opt = k_N * C^a, D_opt = k_D * C^b, D_opt = C / (6 N_opt)", "a": a, "b": b,
              "k_N": float(np.exp(log_kn)), "k_D": float(np.exp(log_kd)), "budgets": budgets,
              "skipped_budgets": skipped}
    samples, failed = [], 0
    for w in _stratified_weights(budget, len(values), n_boot, seed):
        found = _minima(log_n, loss, budget, len(values), w)
        if len(found) < MIN_BUDGETS:
            failed += 1
            continue
        a_s, log_kn_s, b_s, log_kd_s = _power_laws(np.log(values[found[:, 0].astype(int)]), found[:, 1])
        samples.append({"a": a_s, "b": b_s, "k_N": np.exp(log_kn_s), "k_D": np.exp(log_kd_s)})
    table = pd.DataFrame(samples, columns=["a", "b", "k_N", "k_D"], dtype=float)
    ci = stats.percentile_ci(table, level) if len(table) else {k: None for k in table}
    return {**result, "ci": ci, "ci_level": level, "n_bootstrap": n_boot, "n_bootstrap_failed": failed,
            "samples": table}


def _stratified_weights(budget: np.ndarray, n_budgets: int, n_boot: int, seed: int):
    """Per resample, how often each run is drawn: runs resampled with replacement within each budget."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(budget == k) for k in range(n_budgets)]
    for _ in range(n_boot):
        w = np.zeros(budget.size)
        for rows in members:
            np.add.at(w, rows[rng.integers(0, rows.size, rows.size)], 1.0)
        yield w


def read_curves(path) -> pd.DataFrame:
    """An IsoFLOP JSON list of {parameters, compute_budget, final_loss} as a table."""
    return pd.read_json(path).rename(columns={"parameters": "N", "compute_budget": "C", "final_loss": "loss"})


def entry(job: laws.Job) -> dict[str, Any]:
    """The isoflop entry of fits.json: Chinchilla's approach 2 over the planned budgets."""
    usable = job.usable
    if usable.empty or not laws.is_isoflop(usable):
        return job.skipped(LAW, "the usable cells are not an IsoFLOP grid (experiment.compute_budgets)")
    iso = fit_isoflops(usable["N_nonembedding"], laws.budgets(usable), usable["val_loss"], n_boot=job.n_boot,
                       seed=job.seed, level=job.level)
    iso = {k: v for k, v in iso.items() if k != "samples"}
    if "skipped" in iso:
        return {**iso, **job.skipped(LAW, iso["skipped"])}
    return {"law": LAW, "x": ["N_nonembedding", "C budget"], "y": "val_loss", **iso,
            "cells_used": list(cell_ids(usable)), "cells_excluded": job.excluded}


REGISTERED = laws.Law(LAW, entry, laws.allocation_summary,
                      applies=lambda runs, has_curves: laws.is_isoflop(runs))


def vertex_sides(n, c, loss) -> list[dict[str, Any]]:
    """Per budget, where its optimum lies against the sizes run: ``inside``, ``below`` or ``above``.

    The vertex of the parabola ``parabola_minimum`` fits; a profile with no minimum (too few
    sizes, or not convex) points the way its lowest loss does - to the smallest or largest size
    run (``inside`` when the lowest loss is in between, none with a single size).
    """
    n, c, loss = check_runs(n, c, loss)
    values, budget = _budgets(c)
    rows = []
    for k, value in enumerate(values):
        sizes, losses = n[budget == k], loss[budget == k]
        low, high = float(sizes.min()), float(sizes.max())
        found = parabola_minimum(np.log(sizes), losses) if np.unique(sizes).size >= MIN_SIZES else None
        best = float(sizes[np.argmin(losses)])
        n_opt = float(np.exp(found[0])) if found is not None else None
        where = n_opt if n_opt is not None else best
        side = ("below" if where < low or (n_opt is None and best == low) else
                "above" if where > high or (n_opt is None and best == high) else "inside")
        if np.unique(sizes).size < 2:
            side = None
        rows.append({"C": float(value), "N_opt": n_opt, "N_min": low, "N_max": high, "n_sizes":
                     int(np.unique(sizes).size), "side": side})
    return rows
