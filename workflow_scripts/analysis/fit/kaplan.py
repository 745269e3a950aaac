"""Kaplan et al. (2020)'s joint laws: L(N, D) (Eq. 1.5) and the learning-curve law L(N, S) (Eq. 1.6).

    L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D       over the final losses of every usable cell
    L(N, S) = (N_c/N)^α_N + (S_c/S)^α_S               over learning-curve points

Both are fitted in log space with the engine of the other laws (``workflow_scripts.analysis.fit.huber``:
summed Huber(δ = 1e-3) of log residuals, L-BFGS-B from every start of a grid, bootstrap by
resampling cells whole), not by Kaplan's own least squares, so every law of fits.json is fitted
the same way. Neither form has an irreducible term, as in the paper.

L(N, D): θ = (log N_c, log D_c, r = α_N/α_D, α_D); log L̂ = α_D · logsumexp(r (log N_c − log N),
log D_c − log D). The grid is built from the data: for each (α_N, α_D) and share q of the bracket
taken by the N term at the median cell, N_c and D_c are chosen to reproduce the median loss.

L(N, S): Kaplan use S_min, the steps at the critical batch size (Eq. 1.6, §5.1); here S is the
optimizer steps taken at the experiment's fixed batch size (L(N, S_min), from the measured noise
scale, is ``workflow_scripts.analysis.fit.critical_batch``). Points are each model's curve at its largest D (the longest run, as Kaplan fitted
the curves of their longest runs), leaving out the first ``skip`` fraction of its steps (warmup
and the early transient the form does not describe). The curves come from cosine schedules of
that length, so late points carry the schedule's decay (as Kaplan's did). In the engine's
sum-of-powers form with the irreducible term pinned at exp(−300), i.e. absent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import cell_ids
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import stats
from workflow_scripts.analysis.fit import laws
from workflow_scripts.analysis.fit import quality

ND_LAW, NS_LAW = "kaplan_L(N,D)", "L(N,S)"
ND_FORM = "L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D"
NS_FORM = "L = (N_c/N)^alpha_N + (S_c/S)^alpha_S"
ND_PARAMS, NS_PARAMS = ("N_c", "D_c", "alpha_N", "alpha_D"), ("N_c", "S_c", "alpha_N", "alpha_S")
# Data-driven starts of L(N, D): exponents and the N term's share of the bracket.
ND_GRID = {"alpha_N": (0.05, 0.1, 0.2, 0.4, 0.8), "alpha_D": (0.05, 0.1, 0.2, 0.4, 0.8), "q": (0.2, 0.5, 0.8)}
# Starts of L(N, S) in the engine's layout (a_N, a_S, α_N, α_S), as Hoffmann et al.'s grid.
NS_GRID = {"a_N": (0.0, 5.0, 10.0, 15.0, 20.0), "a_S": (0.0, 5.0, 10.0, 15.0, 20.0),
           "alpha_N": (0.0, 0.5, 1.0, 1.5), "alpha_S": (0.0, 0.5, 1.0, 1.5)}
MIN_CELLS = 5  # four parameters: at least one point more than parameters
NO_E = -300.0  # log E pinned far below any loss: the sum-of-powers form without E


def _nd_terms(thetas: np.ndarray, lx: np.ndarray):
    n_c, d_c, r, a_d = (thetas[:, j, None] for j in range(4))  # (S, 1) each
    z1, z2 = r * (n_c - lx[0]), d_c - lx[1]  # (S, n)
    top = np.maximum(z1, z2)
    e1, e2 = np.exp(z1 - top), np.exp(z2 - top)
    s = e1 + e2
    return n_c, r, a_d, top + np.log(s), e1 / s, e2 / s


def nd_batch(thetas: np.ndarray, lx: np.ndarray, ly: np.ndarray, w, delta: float):
    """Σ w·Huber(log L̂ − log y) of L(N, D) and its analytic gradient per row of θ (S, 4)."""
    n_c, r, a_d, lse, p1, p2 = _nd_terms(thetas, lx)
    h, c = hf.huber(a_d * lse - ly, delta)
    cw = c * w
    grad = np.empty(thetas.shape)
    grad[:, 0] = (cw * a_d * p1 * r).sum(axis=1)
    grad[:, 1] = (cw * a_d * p2).sum(axis=1)
    grad[:, 2] = (cw * a_d * p1 * (n_c - lx[0])).sum(axis=1)
    grad[:, 3] = (cw * lse).sum(axis=1)
    return (h * w).sum(axis=1), grad


def nd_predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    _, _, a_d, lse, _, _ = _nd_terms(np.asarray(theta, float)[None, :], lx)
    return (a_d * lse)[0]


def _pin_e(thetas):
    return np.concatenate([thetas, np.full((len(thetas), 1), NO_E)], axis=1)


def ns_batch(thetas, lx, ly, w, delta):
    """The sum-of-powers objective with E pinned: θ = (a_N, a_S, α_N, α_S)."""
    f, g = hf.batch_objective(_pin_e(np.asarray(thetas, float)), lx, ly, w, delta)
    return f, g[:, :-1]


def ns_predict(theta, lx):
    return hf.predict(_pin_e(np.asarray(theta, float)[None, :])[0], lx)


ND_FORM_ENGINE = hf.Form(nd_batch, nd_predict)
NS_FORM_ENGINE = hf.Form(ns_batch, ns_predict)


def nd_params(theta) -> dict[str, float]:
    n_c, d_c, r, a_d = (float(v) for v in theta)
    with np.errstate(over="ignore"):
        return {"N_c": float(np.exp(n_c)), "D_c": float(np.exp(d_c)), "alpha_N": r * a_d, "alpha_D": a_d}


def ns_params(theta) -> dict[str, float]:
    a_n, a_s, al_n, al_s = (float(v) for v in theta)
    with np.errstate(all="ignore"):
        n_c = float(np.exp(a_n / al_n)) if al_n != 0 else float("inf")
        s_c = float(np.exp(a_s / al_s)) if al_s != 0 else float("inf")
    return {"N_c": n_c, "S_c": s_c, "alpha_N": al_n, "alpha_S": al_s}


def nd_law(params: dict[str, float], n, d) -> np.ndarray:
    """Kaplan et al. (2020), Eq. 1.5."""
    n, d = np.asarray(n, float), np.asarray(d, float)
    ratio = params["alpha_N"] / params["alpha_D"]
    return ((params["N_c"] / n) ** ratio + params["D_c"] / d) ** params["alpha_D"]


def ns_law(params: dict[str, float], n, s) -> np.ndarray:
    """Kaplan et al. (2020), Eq. 1.6 with S for S_min."""
    n, s = np.asarray(n, float), np.asarray(s, float)
    return (params["N_c"] / n) ** params["alpha_N"] + (params["S_c"] / s) ** params["alpha_S"]


def _nd_starts(lx: np.ndarray, ly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """θ starts reproducing the median loss at the median (N, D), and their grid-edge flags."""
    grid, edge = hf.grid_starts(ND_GRID, ("alpha_N", "alpha_D", "q"))
    ln, ld, ll = np.median(lx[0]), np.median(lx[1]), np.median(ly)
    al_n, al_d, q = grid.T
    bracket = ll / al_d  # log of the bracket [(N_c/N)^(α_N/α_D) + D_c/D] at the median loss
    r = al_n / al_d
    n_c = ln + (np.log(q) + bracket) / r
    d_c = ld + np.log(1 - q) + bracket
    return np.column_stack([n_c, d_c, r, al_d]), edge


def _check(n, x2, loss, names, min_cells=MIN_CELLS):
    n, x2, loss = stats.positive_arrays(names, (n, x2, loss))
    cells = np.unique(np.column_stack([n, x2]), axis=0).shape[0]
    if np.unique(n).size < 2 or np.unique(x2).size < 2 or cells < min_cells:
        raise ValueError(f"got {np.unique(n).size} distinct {names[0]}, {np.unique(x2).size} distinct "
                         f"{names[1]} and {cells} ({names[0]}, {names[1]}) points; need at least 2 distinct "
                         f"{names[0]}, 2 distinct {names[1]} and {min_cells}")
    return n, x2, loss


def _fit(law, lx, ly, starts, edge, form, to_params, groups, valid, n_boot, seed, level, delta):
    full = hf.fit_grid(lx, ly, starts, edge, delta, form=form)
    params = to_params(full["theta"])
    result = {"params": params, "best_start_on_grid_edge": full["on_edge"],
              "best_start": [float(v) for v in starts[full["start"]]],
              "goodness": stats.goodness(ly, form.predict(full["theta"], lx), full["objective"])}
    if not all(np.isfinite(v) for v in params.values()):
        raise ValueError(f"the fit diverged ({', '.join(f'{k}={v:.3g}' for k, v in params.items())})")
    if n_boot == 0:
        return {**result, "ci": {}, "n_bootstrap_failed": 0}
    thetas, failed = hf.bootstrap_grid(lx, ly, groups, starts, full, n_boot, seed, valid, delta, form=form)
    rows = [to_params(t) for t in thetas]
    ok = [r for r in rows if all(np.isfinite(v) for v in r.values())]
    samples = pd.DataFrame(ok, columns=list(params), dtype=float)
    ci = stats.percentile_ci(samples, level) if len(samples) else {k: None for k in params}
    return {**result, "ci": ci, "n_bootstrap_failed": failed + len(rows) - len(ok), "samples": samples}


def _valid(n, x2, min_cells):
    cell = hf.group_index(np.column_stack([n, x2]))[0]

    def valid(mask):
        return np.unique(n[mask]).size >= 2 and np.unique(x2[mask]).size >= 2 and \
            np.unique(cell[mask]).size >= min_cells
    return valid


def fit_kaplan_nd(n, d, loss, groups=None, n_boot: int = 0, seed: int = laws.DEFAULTS["seed"],
                  level: float = laws.DEFAULTS["level"], delta: float = hf.HUBER_DELTA) -> dict[str, Any]:
    """Fit Eq. 1.5 to final losses; ``params`` {N_c, D_c, alpha_N, alpha_D}, ``ci`` with ``n_boot`` > 0.

    Bootstrap groups default to the (N, D) cell (its seeds drawn together).
    """
    stats.check_level(level, n_boot)
    n, d, loss = _check(n, d, loss, ("N", "D"))
    lx, ly = np.log(np.vstack([n, d])), np.log(loss)
    starts, edge = _nd_starts(lx, ly)
    groups = np.column_stack([n, d]) if groups is None else np.asarray(groups)
    return _fit(ND_LAW, lx, ly, starts, edge, ND_FORM_ENGINE, nd_params, groups, _valid(n, d, MIN_CELLS),
                n_boot, seed, level, delta)


def fit_kaplan_ns(n, s, loss, groups, n_boot: int = 0, seed: int = laws.DEFAULTS["seed"],
                  level: float = laws.DEFAULTS["level"], delta: float = hf.HUBER_DELTA) -> dict[str, Any]:
    """Fit Eq. 1.6 to curve points (N, steps S, loss); ``groups`` names each point's curve (drawn whole)."""
    stats.check_level(level, n_boot)
    n, s, loss = _check(n, s, loss, ("N", "S"))
    lx, ly = np.log(np.vstack([n, s])), np.log(loss)
    starts, edge = hf.grid_starts(NS_GRID, tuple(NS_GRID))
    groups = pd.factorize(np.asarray(groups))[0]  # curve names as numbers: the engine groups numeric rows
    curve = groups

    def valid(mask):  # two models, two step counts, two curves
        return (np.unique(n[mask]).size >= 2 and np.unique(s[mask]).size >= 2
                and np.unique(curve[mask]).size >= 2)
    return _fit(NS_LAW, lx, ly, starts, edge, NS_FORM_ENGINE, ns_params, groups, valid, n_boot, seed, level,
                delta)


def curve_points(runs: pd.DataFrame, curves: pd.DataFrame, skip: float) -> pd.DataFrame:
    """L(N, S)'s points: each model's usable curve at its largest D, steps past ``skip`` of its last step."""
    if not 0 <= skip < 1:
        raise ValueError(f"curve skip fraction must lie in [0, 1), got {skip}")
    curves = curves.assign(cell=cell_ids(curves))
    curves = curves[curves["cell"].isin(set(cell_ids(runs)))]
    curves = curves[curves["D"] == curves.groupby("N_nonembedding")["D"].transform("max")]
    loss = pd.to_numeric(curves["eval_loss"], errors="coerce")
    last = curves.groupby("cell")["step"].transform("max")
    keep = (curves["step"] > skip * last) & (curves["step"] > 0) & np.isfinite(loss) & (loss > 0)
    return curves[keep]


def nd_entry(job: laws.Job) -> dict[str, Any]:
    """The kaplan_L(N,D) entry of fits.json over every usable cell's final loss, or why it was skipped."""
    usable = job.usable
    n, d, loss = usable["N_nonembedding"], usable["D"], usable["val_loss"]
    try:
        fit = fit_kaplan_nd(n, d, loss, n_boot=job.n_boot, seed=job.seed, level=job.level)
    except ValueError as why:
        return job.skipped(ND_LAW, f"usable cells: {why}")
    # Residual signs ordered along compute C = 6ND, as L(N,D)'s (workflow_scripts.analysis.fit.parametric).
    fit["goodness"] = {**fit["goodness"], **quality.residual_record(
        usable["C"].to_numpy(float), np.log(loss.to_numpy(float)), np.log(nd_law(fit["params"], n, d)))}
    head = {"law": ND_LAW, "form": ND_FORM, "x": ["N_nonembedding", "D"], "y": "val_loss"}
    entry = laws.law_entry(head, "all usable cells", fit, usable, job, [], "distinct N, D or cells")
    entry["extrapolation"] = laws.extrapolation(
        usable, lambda kept: fit_kaplan_nd(kept["N_nonembedding"], kept["D"], kept["val_loss"])["params"],
        lambda params, held: nd_law(params, held["N_nonembedding"], held["D"]), job.n_holdout)
    return entry


def ns_entry(job: laws.Job) -> dict[str, Any]:
    """The L(N,S) entry of fits.json from each model's longest learning curve, or why it was skipped."""
    if job.curves is None:
        return job.skipped(NS_LAW, "no learning curves given (--curves)")
    skip = job.curve_skip
    points = curve_points(job.usable, job.curves, skip)
    n, s, loss = points["N_nonembedding"], points["step"], points["eval_loss"]
    try:
        fit = fit_kaplan_ns(n, s, loss, points["cell"], n_boot=job.n_boot, seed=job.seed, level=job.level)
    except ValueError as why:
        return job.skipped(NS_LAW, f"curve points past {skip:.0%} of each run: {why}")
    # Residual signs along each curve in turn (models by size, steps in order): a curve the form
    # bends away from gives long runs.
    size_rank = np.unique(n.to_numpy(float), return_inverse=True)[1]
    order = size_rank * (1.0 + s.max()) + s.to_numpy(float)
    fit["goodness"] = {**fit["goodness"], **quality.residual_record(
        order, np.log(loss.to_numpy(float)), np.log(ns_law(fit["params"], n, s)))}
    head = {"law": NS_LAW, "form": NS_FORM, "x": ["N_nonembedding", "step"], "y": "eval_loss"}
    selection = f"each model's curve at its largest D, steps past {skip:.0%} of the run"
    cells = job.usable[cell_ids(job.usable).isin(set(points["cell"]))]
    entry = laws.law_entry(head, selection, fit, cells, job, [], "distinct N, S or curves")
    entry["curve_skip"] = skip
    return entry


def summary(result: dict[str, Any]) -> str:
    return (" ".join(f"{k}={v:.4g}" for k, v in result["params"].items())
            + f" {result['ci_level']:.0%} CI alpha_N {result['ci'].get('alpha_N')}"
            + f" ({len(result['cells_used'])} cells)")


REGISTERED_ND = laws.Law(ND_LAW, nd_entry, summary)
REGISTERED_NS = laws.Law(NS_LAW, ns_entry, summary, applies=lambda runs, has_curves: has_curves)
