"""Chinchilla's approach 1: the lowest loss at each FLOP count (Hoffmann et al. 2022, §3.1).

Each run's loss is interpolated as a function of FLOPs; on a log-spaced grid of FLOP values the
run with the lowest loss gives N_opt(C) and the tokens (or samples) it had seen, D_opt(C); then
N_opt = k_N·C^a and D_opt = k_D·C^b are fitted by least squares in log-log space.

Which points, and why. Chinchilla trained each size with 4 cosine schedules whose lengths span
16×, and took the envelope over every point of every curve. A point in the middle of a cosine
schedule is not the loss a run of that length would reach (its rate has not decayed), which
Chinchilla's several schedules per size compensate for only near their ends (their §3.1 and
App. D caveat). Our grid has one cosine per (N, D) cell, so:

- ``final`` (the default when at least two models were run at two or more data sizes): each
  model's curve is its cells' final losses across data sizes, interpolated in log C − log L
  (and log C − log D for D_opt). Every point is a fully annealed run, the faithful reading of
  Chinchilla's "cosine matched to the length"; the interpolation between data sizes is the
  only approximation.
- ``all``: every evaluation of every cell's curve, as Chinchilla did; intermediate points are
  pessimistic, more so for long schedules, which biases N_opt towards models whose runs end
  near C. Used by ``auto`` only when no model has two data sizes (a grid of one D).

A grid point counts only where at least two model sizes have a curve, so a lone size cannot win
by default. Intervals resample models (``final``: a model's curve across data sizes drawn whole,
since dropping one of few data sizes would cut its curve short) or cells (``all``: a cell's
curves, its seeds together) with replacement. The envelope is a minimum, so a duplicate adds
nothing and each resample is the subset drawn: the interval measures how much the exponents
depend on which models or cells were run, more than the noise of each loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import cell_ids
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import stats
from workflow_scripts.analysis.fit import laws

LAW = "approach1"
MODES = ("auto", "final", "all")
GRID_POINTS = 250  # Chinchilla used 1,500 over many more sizes; a few per decade suffice here
SEEDLESS = ("model", "data")  # the id the seeds of one cell share: a bootstrap unit
FORM = "N_opt = k_N * C^a, D_opt = k_D * C^b (lowest loss at each FLOP count)"


def traces(runs: pd.DataFrame, curves: pd.DataFrame | None, mode: str = "auto") -> tuple[pd.DataFrame, str]:
    """The points to interpolate, one row each: trace, unit (of the bootstrap), N, C, D, loss; and the mode.

    ``runs`` are usable cells (status ok, finite loss); ``curves`` (curves.parquet) is needed
    for ``all``. Raises ValueError naming what is missing.
    """
    if mode not in MODES:
        raise ValueError(f"approach 1 points {mode!r}; expected one of {', '.join(MODES)}")
    n_d = runs.groupby("N_nonembedding")["D"].nunique()
    if mode == "auto":
        mode = "final" if (n_d >= 2).sum() >= 2 else "all"
    if mode == "final":
        # Seeds of one cell averaged: one annealed point per (N, D).
        cells = runs.assign(cell=cell_ids(runs, SEEDLESS))
        points = cells.groupby(["N_nonembedding", "D", "cell"], as_index=False).agg(
            C=("C", "mean"), loss=("val_loss", "mean"))
        points["trace"] = points["unit"] = points["N_nonembedding"]
        return points.rename(columns={"N_nonembedding": "N"})[["trace", "unit", "N", "C", "D", "loss"]], mode
    if curves is None:
        raise ValueError("no learning curves given (needed to use every point of the curves: fewer than "
                         "two models have two data sizes)")
    seen = "tokens" if "tokens" in curves.columns else "samples"
    ids = cell_ids(curves)
    loss = pd.to_numeric(curves["eval_loss"], errors="coerce")
    keep = ids.isin(set(cell_ids(runs))) & (curves["flops"] > 0) & np.isfinite(loss) & (loss > 0)
    points = pd.DataFrame({"trace": ids[keep], "unit": cell_ids(curves, SEEDLESS)[keep],
                           "N": curves["N_nonembedding"][keep], "C": curves["flops"][keep],
                           "D": curves[seen][keep], "loss": loss[keep]})
    return points.reset_index(drop=True), mode


def _interpolants(points: pd.DataFrame):
    """Per trace (N, log C, log L, log D), sorted by C, traces of one point left out."""
    out = []
    for _, t in points.groupby("trace", sort=True):
        t = t.sort_values("C").drop_duplicates("C")
        if len(t) >= 2:
            out.append((float(t["N"].iloc[0]), np.log(t["C"].to_numpy(float)),
                        np.log(t["loss"].to_numpy(float)),
                        np.log(t["D"].to_numpy(float))))
    return out


def envelope(points: pd.DataFrame, grid: np.ndarray | None = None) -> pd.DataFrame:
    """At each grid C (default: log-spaced over the traces), the trace of lowest loss: C, N_opt, D_opt, loss.

    Only grid points inside at least two model sizes' traces are kept.
    """
    pieces = _interpolants(points)
    if not pieces:
        return pd.DataFrame(columns=["C", "N_opt", "D_opt", "loss"])
    if grid is None:
        lo, hi = min(p[1][0] for p in pieces), max(p[1][-1] for p in pieces)
        grid = np.exp(np.linspace(lo, hi, GRID_POINTS))
    lg = np.log(grid)
    loss = np.full((len(pieces), lg.size), np.inf)
    d = np.zeros_like(loss)
    sizes = np.array([p[0] for p in pieces])
    for i, (_, lc, ll, ld) in enumerate(pieces):
        inside = (lg >= lc[0]) & (lg <= lc[-1])
        loss[i, inside] = np.interp(lg[inside], lc, ll)
        d[i, inside] = np.interp(lg[inside], lc, ld)
    finite = np.isfinite(loss)
    n_sizes = np.array([np.unique(sizes[finite[:, j]]).size for j in range(lg.size)])
    best = np.argmin(loss, axis=0)
    cols = np.flatnonzero(n_sizes >= 2)
    return pd.DataFrame({"C": grid[cols], "N_opt": sizes[best[cols]], "D_opt": np.exp(d[best[cols], cols]),
                         "loss": np.exp(loss[best[cols], cols])})


def power_fits(env: pd.DataFrame) -> dict[str, float]:
    """a, k_N, b, k_D by least squares of log N_opt and log D_opt on log C."""
    lc = np.log(env["C"].to_numpy(float))
    a, log_kn = np.polyfit(lc, np.log(env["N_opt"].to_numpy(float)), 1)
    b, log_kd = np.polyfit(lc, np.log(env["D_opt"].to_numpy(float)), 1)
    return {"a": float(a), "b": float(b), "k_N": float(np.exp(log_kn)), "k_D": float(np.exp(log_kd))}


def switches(env: pd.DataFrame, points: pd.DataFrame) -> dict[str, int]:
    """How often the envelope's winner changes, and how often because its curve ends there.

    A size whose curve (its largest data size, or its longest run) ends before the next grid C
    cannot win there, whatever its loss would have been with more data: a change of winner
    forced so is set by the grid, not by the losses, as an IsoFLOP vertex outside the sizes run.
    """
    reach = points.groupby("N")["C"].max()
    n_opt, c = env["N_opt"].to_numpy(float), env["C"].to_numpy(float)
    changes = np.flatnonzero(n_opt[1:] != n_opt[:-1]) + 1
    ended = sum(int(reach[n_opt[j - 1]] < c[j]) for j in changes)
    return {"n": int(changes.size), "at_data_edge": ended}


def _check_envelope(env: pd.DataFrame) -> None:
    if len(env) < 2:
        raise ValueError("no FLOP count is reached by two model sizes' curves")
    if env["N_opt"].nunique() < 2:
        raise ValueError(f"one model size (N = {env['N_opt'].iloc[0]:.4g}) has the lowest loss at every "
                         "FLOP count: no trend to fit")


def fit_approach1(points: pd.DataFrame, n_boot: int = 0, seed: int = laws.DEFAULTS["seed"],
                  level: float = laws.DEFAULTS["level"]) -> dict[str, Any]:
    """The envelope of ``points`` (``traces``), the exponents and, with ``n_boot``, resampled intervals."""
    stats.check_level(level, n_boot)
    env = envelope(points)
    _check_envelope(env)
    grid = env["C"].to_numpy(float)
    fit = power_fits(env)
    resid = np.log(env["N_opt"]) - np.log(fit["k_N"] * env["C"] ** fit["a"])
    result = {**fit, "envelope": env, "rmse_log_N": float(np.sqrt(np.mean(resid ** 2)))}
    samples, failed = [], 0
    units = pd.factorize(points["unit"])[0]
    for w in hf.resample_weights(units, n_boot, seed):
        try:
            env_s = envelope(points[w > 0], grid)
            _check_envelope(env_s)
        except ValueError:
            failed += 1
            continue
        samples.append(power_fits(env_s))
    table = pd.DataFrame(samples, columns=["a", "b", "k_N", "k_D"], dtype=float)
    ci = stats.percentile_ci(table, level) if len(table) else {k: None for k in ("a", "b", "k_N", "k_D")}
    return {**result, "ci": ci, "ci_level": level, "n_bootstrap": n_boot, "n_bootstrap_failed": failed}


def entry(job: laws.Job) -> dict[str, Any]:
    """The approach1 entry of fits.json, or why it was skipped."""
    usable = job.usable
    try:
        if usable.empty:
            raise ValueError("no usable cells")
        points, used_mode = traces(usable, job.curves, job.approach1_points)
        fit = fit_approach1(points, job.n_boot, job.seed, job.level)
    except ValueError as why:
        return job.skipped(LAW, str(why))
    env, rmse = fit.pop("envelope"), fit.pop("rmse_log_N")
    warnings = []
    if used_mode == "all":
        warnings.append("every point of the curves used: intermediate points of a cosine schedule are not "
                        "compute-optimal for their length (Hoffmann et al. 2022, §3.1)")
    sizes = np.sort(points["N"].unique())
    if env["N_opt"].iloc[0] == sizes[0] or env["N_opt"].iloc[-1] == sizes[-1]:
        warnings.append("the smallest or largest model wins at the ends of the FLOP range: N_opt may lie "
                        "outside the sizes run there")
    if fit["n_bootstrap_failed"] > job.n_boot / 2:
        warnings.append(f"{fit['n_bootstrap_failed']} of {job.n_boot} bootstrap resamples had no trend")
    winners = env.groupby("N_opt").size()
    return {"law": LAW, "form": FORM, "x": "C", "y": "val_loss" if used_mode == "final" else "eval_loss",
            "points_mode": used_mode, **fit, "goodness": {"rmse_log": rmse, "n_points": len(env)},
            "grid_points": len(env), "switches": switches(env, points),
            "points": [{k: float(v) for k, v in row.items()} for row in env.to_dict("records")],
            "winners": [{"N": float(n), "n_points": int(c)} for n, c in winners.items()],
            "cells_used": sorted(cell_ids(usable)), "cells_excluded": job.excluded, "warnings": warnings}


def applies(runs: pd.DataFrame, has_curves: bool) -> bool:
    """With learning curves, or with two models run at two or more data sizes each (``final`` points)."""
    return has_curves or int((runs.groupby("N_nonembedding")["D"].nunique() >= 2).sum()) >= 2


REGISTERED = laws.Law(LAW, entry, laws.allocation_summary, applies=applies)
