"""Kaplan et al. (2020, §5.1)'s critical batch size and the laws in the steps and compute it adjusts:
L(N, S_min) (Eq. 1.6 with S_min) and L(C_min) (Eq. 1.3).

    B_crit(L) = B* / L^(1/α_B)                     Eq. 5.3, fitted to the curves' noise scales
    S_min     = S / (1 + B_crit(L)/B)              Eq. 5.4: the fewest steps that reach L
    E_min     = E / (1 + B/B_crit(L))              Eq. 5.5: the fewest examples (tokens) that reach L
    C_min     = 6 N E_min                          (in tokens, Kaplan's C ≈ 6NE)

B_crit(L) is fitted to the gradient noise scale B_simple of every learning-curve point
(``noise_scale`` of curve.csv, ``workflow_scripts.train.noise_scale``), which McCandlish et al.
(2018) and Kaplan et al. (§5.1) take as its estimate: a line in log-log space by least squares,
log B = log B* − (1/α_B) log L, over points of positive noise scale past ``curve_skip`` of each run;
intervals from resampling curves whole. B, B* and B_crit are in the trainer's examples (windows
of ``context`` tokens), so only their ratio enters S_min and E_min.

Each point (S, L) of a curve then has its S_min and, with its tokens E, its C_min. L(N, S_min) is
fitted as L(N, S) (``workflow_scripts.analysis.fit.kaplan``, the same points: each model's curve at
its largest D); L(C_min) = E + A·C_min^(−α) (``workflow_scripts.analysis.fit.power_law``) over the
envelope of all curves in C_min (the points no cheaper point beats), Kaplan's L(C_min) of §6.
Their intervals hold B_crit's fit fixed; its own intervals are in each entry's ``critical_batch``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import cell_ids
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import kaplan, laws, power_law, quality, stats

NS_MIN_LAW, C_MIN_LAW = "L(N,S_min)", "L(C_min)"
B_CRIT_FORM = "B_crit = B_star / L^(1/alpha_B)"
NOT_MEASURED = "no noise_scale in the learning curves (turn on training.noise_scale)"


def b_crit(params: dict[str, float], loss) -> np.ndarray:
    """Kaplan et al. (2020), Eq. 5.3."""
    return params["B_star"] / np.asarray(loss, float) ** (1 / params["alpha_B"])


def s_min(steps, batch, critical) -> np.ndarray:
    """Kaplan et al. (2020), Eq. 5.4."""
    return np.asarray(steps, float) / (1 + np.asarray(critical, float) / np.asarray(batch, float))


def e_min(examples, batch, critical) -> np.ndarray:
    """Kaplan et al. (2020), Eq. 5.5 (examples or tokens alike)."""
    return np.asarray(examples, float) / (1 + np.asarray(batch, float) / np.asarray(critical, float))


def c_min(n, tokens_min) -> np.ndarray:
    """Compute at the critical batch size, C_min = 6 N E_min (Kaplan et al. 2020, §2.1 and Eq. 5.5)."""
    return 6 * np.asarray(n, float) * np.asarray(tokens_min, float)


def has_noise_scale(runs: pd.DataFrame, has_curves: bool) -> bool:
    """Whether the cells measured the noise scale (its final value in runs.csv) and their curves are given."""
    return has_curves and "noise_scale" in runs.columns and bool(runs["noise_scale"].notna().any())


def _line(ll, lb, w=None) -> dict[str, float]:
    # polyfit weights multiply residuals: √w weighs each squared residual by its count.
    slope, intercept = np.polyfit(ll, lb, 1, w=None if w is None else np.sqrt(w))
    with np.errstate(divide="ignore", over="ignore"):
        return {"B_star": float(np.exp(intercept)), "alpha_B": float(-1 / slope) if slope else float("inf")}


def fit_b_crit(loss, noise, groups, n_boot: int = 0, seed: int = laws.DEFAULTS["seed"],
               level: float = laws.DEFAULTS["level"]) -> dict[str, Any]:
    """Fit Eq. 5.3 to (loss, noise scale) points; ``groups`` names each point's curve (drawn whole)."""
    stats.check_level(level, n_boot)
    loss, noise = stats.positive_arrays(("loss", "noise scale"), (loss, noise))
    groups = pd.factorize(np.asarray(groups))[0]
    if np.unique(loss).size < 3 or np.unique(groups).size < 2:
        raise ValueError(f"{np.unique(loss).size} distinct losses in {np.unique(groups).size} curve(s); "
                         "need at least 3 in 2")
    ll, lb = np.log(loss), np.log(noise)
    params = _line(ll, lb)
    pred = np.log(b_crit(params, loss))
    result = {"form": B_CRIT_FORM, "params": params, "goodness": stats.goodness(lb, pred, None)}
    rows, failed = [], 0
    for w in hf.resample_weights(groups, n_boot, seed):
        keep = w > 0
        if np.unique(ll[keep]).size < 3:
            failed += 1
            continue
        rows.append(_line(ll[keep], lb[keep], w[keep]))
    samples = pd.DataFrame(rows, columns=list(params), dtype=float)
    ci = stats.percentile_ci(samples, level) if len(samples) else {k: None for k in params}
    return {**result, "ci": ci, "ci_level": level, "n_bootstrap": n_boot, "n_bootstrap_failed": failed}


def _with_batch(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Curve rows of the usable cells, each with its cell's id and batch size B (runs.csv)."""
    batch = dict(zip(cell_ids(runs), pd.to_numeric(runs["batch_size"], errors="coerce")))
    curves = curves.assign(cell=cell_ids(curves))
    curves = curves[curves["cell"].isin(set(batch))]
    return curves.assign(batch_size=curves["cell"].map(batch))


def noise_points(runs: pd.DataFrame, curves: pd.DataFrame, skip: float) -> pd.DataFrame:
    """Eq. 5.3's points: curve rows past ``skip`` of their run with a positive noise scale and loss."""
    if "noise_scale" not in curves.columns or "batch_size" not in runs.columns:
        return curves.iloc[:0]
    curves = _with_batch(curves, runs)
    loss, noise = (pd.to_numeric(curves[c], errors="coerce") for c in ("eval_loss", "noise_scale"))
    last = curves.groupby("cell")["step"].transform("max")
    keep = (curves["step"] > skip * last) & (loss > 0) & (noise > 0) & np.isfinite(loss) & np.isfinite(noise)
    return curves[keep]


def critical_batch(job: laws.Job) -> dict[str, Any]:
    """The B_crit(L) record of an adjusted law's entry; a ValueError saying why it cannot be fitted."""
    if job.curves is None:
        raise ValueError("no learning curves given (--curves)")
    points = noise_points(job.usable, job.curves, job.curve_skip)
    if points.empty:
        raise ValueError(NOT_MEASURED)
    fit = fit_b_crit(points["eval_loss"], points["noise_scale"], points["cell"], job.n_boot, job.seed, job.level)
    if not all(np.isfinite(v) and v > 0 for v in fit["params"].values()):
        raise ValueError(f"B_crit(L) does not fall with the loss ({B_CRIT_FORM}: {fit['params']})")
    return {**fit, "n_curves": int(points["cell"].nunique()), "curve_skip": job.curve_skip,
            "units": "examples (windows of context tokens) per batch, as the batch size B"}


def adjusted(runs: pd.DataFrame, curves: pd.DataFrame, params: dict[str, float]) -> pd.DataFrame:
    """Every curve row with B_crit at its loss, S_min, tokens E_min and C_min (Eqs. 5.3-5.5)."""
    curves = _with_batch(curves, runs)
    critical = b_crit(params, pd.to_numeric(curves["eval_loss"], errors="coerce"))
    tokens_min = e_min(curves["tokens"], curves["batch_size"], critical)
    return curves.assign(B_crit=critical, S_min=s_min(curves["step"], curves["batch_size"], critical),
                         tokens_min=tokens_min, C_min=c_min(curves["N_nonembedding"], tokens_min))


def envelope(points: pd.DataFrame, x: str = "C_min", y: str = "eval_loss") -> pd.DataFrame:
    """The points no point of at most their ``x`` beats in ``y`` (the envelope of the curves, Kaplan §6)."""
    points = points.sort_values([x, y], kind="stable")
    best_before = np.minimum.accumulate(np.r_[np.inf, points[y].to_numpy(float)[:-1]])
    return points[points[y].to_numpy(float) < best_before]


def _start(job: laws.Job, name: str):
    """(B_crit record, adjusted curve points) or (skipped entry, None)."""
    try:
        record = critical_batch(job)
    except ValueError as why:
        return job.skipped(name, f"critical batch size: {why}"), None
    return record, adjusted(job.usable, job.curves, record["params"])


def ns_min_entry(job: laws.Job) -> dict[str, Any]:
    """The L(N,S_min) entry: Eq. 1.6 over S_min, the points of L(N,S)."""
    record, points = _start(job, NS_MIN_LAW)
    if points is None:
        return record
    points = kaplan.curve_points(job.usable, points, job.curve_skip)
    n, s, loss = points["N_nonembedding"], points["S_min"], points["eval_loss"]
    try:
        fit = kaplan.fit_kaplan_ns(n, s, loss, points["cell"], n_boot=job.n_boot, seed=job.seed, level=job.level)
    except ValueError as why:
        return job.skipped(NS_MIN_LAW, f"curve points past {job.curve_skip:.0%} of each run: {why}")
    size_rank = np.unique(n.to_numpy(float), return_inverse=True)[1]  # residuals along each curve in turn
    order = size_rank * (1.0 + s.max()) + s.to_numpy(float)
    fit["goodness"] = {**fit["goodness"], **quality.residual_record(
        order, np.log(loss.to_numpy(float)), np.log(kaplan.ns_law(fit["params"], n, s)))}
    head = {"law": NS_MIN_LAW, "form": "L = (N_c/N)^alpha_N + (S_c/S_min)^alpha_S", "x": ["N_nonembedding", "S_min"],
            "y": "eval_loss"}
    selection = f"each model's curve at its largest D, steps past {job.curve_skip:.0%} of the run, S at B_crit"
    cells = job.usable[cell_ids(job.usable).isin(set(points["cell"]))]
    entry = laws.law_entry(head, selection, fit, cells, job, [], "distinct N, S_min or curves")
    return {**entry, "curve_skip": job.curve_skip, "critical_batch": record}


def c_min_entry(job: laws.Job) -> dict[str, Any]:
    """The L(C_min) entry: E + A·C_min^(−α) over the envelope of every usable curve in C_min."""
    record, points = _start(job, C_MIN_LAW)
    if points is None:
        return record
    points = points[(points["step"] > 0) & (pd.to_numeric(points["eval_loss"], errors="coerce") > 0)]
    front = envelope(points.dropna(subset=["C_min", "eval_loss"]))
    x, y = front["C_min"].to_numpy(float), front["eval_loss"].to_numpy(float)
    need = 3 if job.irreducible else 2
    if np.unique(x).size < need:
        return job.skipped(C_MIN_LAW, f"{np.unique(x).size} distinct C_min on the envelope (need {need})")
    groups = pd.factorize(front["cell"])[0]  # a curve's envelope points are drawn together
    fit = power_law.fit_power_law(x, y, irreducible=job.irreducible)
    boot = power_law.bootstrap_power_law(x, y, groups=groups, n_boot=job.n_boot, seed=job.seed, level=job.level,
                                         irreducible=job.irreducible)
    goodness = {**fit["goodness"], **quality.residual_record(x, np.log(y), np.log(power_law.law(fit["params"], x)))}
    fit = {**fit, "goodness": goodness, "ci": boot["ci"], "n_bootstrap_failed": boot["n_failed"]}
    head = {"law": C_MIN_LAW, "form": f"L = {'E + ' if job.irreducible else ''}A * C_min^-alpha", "x": "C_min",
            "y": "eval_loss"}
    cells = job.usable[cell_ids(job.usable).isin(set(front["cell"]))]
    entry = laws.law_entry(head, "the envelope of every usable curve in C_min = 6 N E_min", fit, cells, job, [],
                           "distinct C_min values")
    entry["envelope"] = [{"cell": c, "step": int(s), "C_min": float(a), "loss": float(b)}
                         for c, s, a, b in zip(front["cell"], front["step"], x, y)]
    held = front.assign(C=x, val_loss=y)  # the check's columns: compute and loss
    entry["extrapolation"] = laws.extrapolation(
        held, lambda kept: power_law.fit_power_law(kept["C"], kept["val_loss"], irreducible=job.irreducible)["params"],
        lambda params, part: power_law.law(params, part["C"]), job.n_holdout)
    return {**entry, "critical_batch": record}


def summary(result: dict[str, Any]) -> str:
    b = result["critical_batch"]["params"]
    return (" ".join(f"{k}={v:.4g}" for k, v in result["params"].items())
            + f"; B_star={b['B_star']:.4g} alpha_B={b['alpha_B']:.4g} ({len(result['cells_used'])} cells)")


REGISTERED_NS_MIN = laws.Law(NS_MIN_LAW, ns_min_entry, summary, applies=has_noise_scale)
REGISTERED_C_MIN = laws.Law(C_MIN_LAW, c_min_entry, summary, applies=has_noise_scale)
