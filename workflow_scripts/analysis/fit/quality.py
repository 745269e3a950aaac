"""Whether a fitted law describes its cells: the verdict ``good`` or ``poor`` of each fits.json entry.

Judged from the fit itself, each check against a threshold of ``analysis.quality`` in
config/schema.yaml; a law is poor when any check fails, and each reason names the number and
the threshold. The checks, where the entry has what they need:

- relative RMS of the log-loss residuals (``goodness.rmse_log``; a log residual is a relative error);
- a systematic pattern in the residuals: the exact Wald–Wolfowitz runs test on their signs
  ordered along the fitted variable, one-sided (fewer runs than chance: a bend or a plateau
  the form does not follow), judged with enough distinct points (``residual_record``);
- a parameter at its bound: E, or the low end of its interval, far below the lowest loss
  (at 0: the data show no floor, or cannot tell one from none), an exponent at or past its limits;
- the width of the exponents' bootstrap intervals relative to their value;
- the extrapolation error on the held-out largest-compute cells (``laws.extrapolation``);
- IsoFLOP vertices outside the sizes run (``minimum_inside_range`` of each budget);
- disagreement between Chinchilla's approaches 1, 2 and 3 on a (N_opt ∝ C^a);
- where the generator knows its optimal loss: an E below it (no predictor does better), or, for
  the laws whose E is that floor itself (``FLOOR_LAWS``), an E away from it outside E's interval;
- for the laws at the critical batch size, B_crit(L)'s exponent α_B: its interval reaching 0 (the
  noise scale shows no trend with the loss) or wider than the exponents' threshold.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

# The entries whose a is one of Chinchilla's three estimates, with the approach's number;
# L(N,D)'s a is in fits.json's compute_optimal.
APPROACHES = {"approach1": 1, "isoflop": 2, "L(N,D)": 3}
ALLOCATION_EXPONENTS = ("a", "b")
# Laws whose E is the loss of unlimited N and D: the generator's optimal loss. The others hold
# a variable at its largest value, so their E lies above it by that variable's term.
FLOOR_LAWS = ("L(N,D)", "L(C)", "L(C_min)")
# A log residual this small is the optimiser's precision, not a misfit: it carries no sign.
SIGN_TOLERANCE = 1e-6


def check_thresholds(thresholds: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The thresholds (``defaults`` updated by ``thresholds``); a ValueError naming a bad key or value."""
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(defaults))
    if unknown:
        raise ValueError(f"unknown quality threshold(s) {', '.join(unknown)}; expected some of "
                         f"{', '.join(defaults)}")
    for key, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"quality threshold {key} = {value!r}; expected a finite number")
    return {**defaults, **thresholds}


def runs_p_value(signs: np.ndarray) -> float:
    """P(runs ≤ observed) for a random order of the same signs (exact; Wald & Wolfowitz 1940).

    With n1 positive and n2 negative signs, P(R = 2k) = 2·C(n1−1, k−1)·C(n2−1, k−1) / C(n, n1)
    and P(R = 2k+1) = [C(n1−1, k−1)·C(n2−1, k) + C(n1−1, k)·C(n2−1, k−1)] / C(n, n1).
    """
    signs = np.asarray(signs, dtype=bool)
    n1, n2 = int(signs.sum()), int((~signs).sum())
    if n1 == 0 or n2 == 0:
        return 1.0
    runs = 1 + int(np.count_nonzero(signs[1:] != signs[:-1]))
    total, count = math.comb(n1 + n2, n1), 0
    for r in range(2, runs + 1):
        k = r // 2
        if r % 2 == 0:
            count += 2 * math.comb(n1 - 1, k - 1) * math.comb(n2 - 1, k - 1)
        else:
            count += (math.comb(n1 - 1, k - 1) * math.comb(n2 - 1, k)
                      + math.comb(n1 - 1, k) * math.comb(n2 - 1, k - 1))
    return count / total


def residual_record(order, log_loss, log_predicted) -> dict[str, Any]:
    """What the verdict needs of a law's residuals: the runs test along ``order`` and the loss range.

    Residuals of points sharing an ``order`` value (the seeds of one cell) are averaged first,
    so seed noise cannot break a run; residuals within ``SIGN_TOLERANCE`` of zero carry no
    sign and are left out (an exact law's residuals are rounding, and any pattern in them).
    """
    order, log_loss = np.asarray(order, float), np.asarray(log_loss, float)
    resid = log_loss - np.asarray(log_predicted, float)
    values, inverse = np.unique(order, return_inverse=True)
    mean = np.bincount(inverse, weights=resid) / np.bincount(inverse)
    signed = mean[np.abs(mean) > SIGN_TOLERANCE]
    runs = 1 + int(np.count_nonzero(np.diff(signed > 0))) if signed.size else 0
    return {"runs_test": {"n_points": int(signed.size), "n_runs": runs,
                          "p_value": runs_p_value(signed > 0) if signed.size else None},
            "loss_range": [float(np.exp(log_loss.min())), float(np.exp(log_loss.max()))]}


def _percent(value: float) -> str:
    return f"{100 * value:.3g}%"


def _residual_reasons(entry: dict[str, Any], t: Mapping[str, Any]) -> list[str]:
    if "params" not in entry:  # approaches 1 and 2 fit sizes, not losses
        return []
    goodness, reasons = entry.get("goodness", {}), []
    rms = goodness.get("rmse_log")
    if rms is not None and rms > t["max_rms"]:
        reasons.append(f"relative RMS of log-loss residuals {_percent(rms)} > {_percent(t['max_rms'])}")
    runs = goodness.get("runs_test")
    if runs and runs["p_value"] is not None and runs["n_points"] >= t["runs_min_points"] \
            and runs["p_value"] < t["runs_p"]:
        reasons.append(f"residual signs show a systematic pattern: {runs['n_runs']} runs in "
                       f"{runs['n_points']} points, runs-test p {runs['p_value']:.2g} < {t['runs_p']:g}")
    return reasons


def _exponents(entry: dict[str, Any]) -> dict[str, float]:
    """The law's exponents: α, β of a loss law; a, b of an allocation (approaches 1 and 2)."""
    if "params" in entry:
        return {k: v for k, v in entry["params"].items() if k.startswith(("alpha", "beta"))}
    return {k: entry[k] for k in ALLOCATION_EXPONENTS if entry.get(k) is not None}


def _bound_reasons(entry: dict[str, Any], t: Mapping[str, Any]) -> list[str]:
    reasons = []
    params, loss_range = entry.get("params", {}), entry.get("goodness", {}).get("loss_range")
    # Only forms with a fitted E: without one (irreducible false, Kaplan's forms) E = 0 is the law.
    if "E" in params and "E +" in entry.get("form", "") and loss_range:
        floor = t["min_floor_fraction"] * loss_range[0]
        bound = f"(< {t['min_floor_fraction']:g} x the lowest loss {loss_range[0]:.4g})"
        low = ((entry.get("ci") or {}).get("E") or [None])[0]
        if params["E"] < floor:
            reasons.append(f"E = {params['E']:.3g} pinned at its bound 0 {bound}")
        elif low is not None and low < floor:  # the data cannot tell the floor from none
            reasons.append(f"E = {params['E']:.3g} with interval reaching {low:.3g}, its bound 0 {bound}")
    if "params" in entry:  # a, b of an allocation may be anything; the limits are those of a loss law
        for name, value in _exponents(entry).items():
            if value <= t["min_exponent"]:
                reasons.append(f"{name} = {value:.3g} at its limit (<= {t['min_exponent']:g})")
            elif value >= t["max_exponent"]:
                reasons.append(f"{name} = {value:.3g} at its limit (>= {t['max_exponent']:g})")
    return reasons


def _interval_reasons(entry: dict[str, Any], t: Mapping[str, Any]) -> list[str]:
    reasons, ci = [], entry.get("ci") or {}
    for name, value in _exponents(entry).items():
        bounds = ci.get(name)
        if not bounds or value == 0:
            continue
        half = (bounds[1] - bounds[0]) / 2 / abs(value)
        if half > t["max_ci_half_width"]:
            reasons.append(f"{name} = {value:.3g} with interval [{bounds[0]:.3g}, {bounds[1]:.3g}]: "
                           f"half-width {_percent(half)} of the value > {_percent(t['max_ci_half_width'])}")
    return reasons


def _extrapolation_reasons(entry: dict[str, Any], t: Mapping[str, Any]) -> list[str]:
    error = entry.get("extrapolation", {}).get("mean_abs_relative_error")
    if error is not None and error > t["max_extrapolation_error"]:
        return [f"refit without the largest-compute cells misses them by {_percent(error)} "
                f"> {_percent(t['max_extrapolation_error'])}"]
    return []


def _vertex_reasons(entry: dict[str, Any]) -> list[str]:
    outside = [b for b in entry.get("budgets", []) if not b["minimum_inside_range"]]
    if not outside:
        return []
    where = ", ".join(f"{b['C']:.3g}" for b in outside)
    return [f"{len(outside)} of {len(entry['budgets'])} IsoFLOP vertices outside the sizes run (C = {where}) "
            "> 0"]


def _envelope_reasons(entry: dict[str, Any], t: Mapping[str, Any]) -> list[str]:
    """Approach 1's envelope, where its winners change because the winner's curve ends
    (workflow_scripts.analysis.fit.approach1.switches)."""
    record = entry.get("switches")
    if not record or not record["n"]:
        return []
    share = record["at_data_edge"] / record["n"]
    if share <= t["max_envelope_edge_share"]:
        return []
    return [f"{record['at_data_edge']} of {record['n']} changes of the envelope's winner come where the winner's "
            f"curve ends (its largest data size): {_percent(share)} > {_percent(t['max_envelope_edge_share'])}; "
            "N_opt follows the grid's data sizes, not the losses"]


def _approach_reasons(name: str, estimates: Mapping[str, dict[str, Any]], t: Mapping[str, Any]) -> list[str]:
    """Reasons of approach ``name`` from the gap between its a and every other approach's."""
    def text(law):
        ci = estimates[law].get("ci", {}).get("a")
        return f"approach {APPROACHES[law]} a = {estimates[law]['a']:.3g}" + (
            f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")
    gaps = {other: abs(estimates[name]["a"] - estimates[other]["a"]) for other in estimates if other != name}
    return [f"{text(name)} and {text(other)} differ by {gap:.3g} > {t['max_approach_gap']:g}"
            for other, gap in gaps.items() if gap > t["max_approach_gap"]]


def _floor_reasons(name: str, entry: dict[str, Any], optimal: float | None, t: Mapping[str, Any]) -> list[str]:
    params = entry.get("params", {})
    if optimal is None or "E" not in params or "E +" not in entry.get("form", ""):
        return []
    e, tolerance = params["E"], t["max_floor_error"]
    gap = e / optimal - 1
    low, high = ((entry.get("ci") or {}).get("E") or [e, e])
    said = f"E = {e:.4g} is {_percent(abs(gap))} {'below' if gap < 0 else 'above'} the generator's optimal " \
           f"loss {optimal:.4g}"
    if gap < -tolerance and high < optimal:
        return [f"{said} (no predictor does better) > {_percent(tolerance)}"]
    if name in FLOOR_LAWS and abs(gap) > tolerance and not low <= optimal <= high:
        return [f"{said}, outside E's interval [{low:.4g}, {high:.4g}], > {_percent(tolerance)}"]
    return []


def _critical_batch_reasons(entry: dict[str, Any], t: Mapping[str, Any]) -> list[str]:
    """B_crit(L) = B*/L^(1/α_B) under a law in S_min or C_min (workflow_scripts.analysis.fit.critical_batch)."""
    record = entry.get("critical_batch")
    bounds = ((record or {}).get("ci") or {}).get("alpha_B")
    if not bounds:
        return []
    value = record["params"]["alpha_B"]
    where = f"B_crit's alpha_B = {value:.3g} with interval [{bounds[0]:.3g}, {bounds[1]:.3g}]"
    if bounds[0] <= 0:
        return [f"{where} reaching 0: the noise scale shows no fall with the loss"]
    half = (bounds[1] - bounds[0]) / 2 / abs(value)
    if half > t["max_ci_half_width"]:
        return [f"{where}: half-width {_percent(half)} of the value > {_percent(t['max_ci_half_width'])}"]
    return []


def judge(entry: dict[str, Any], thresholds: Mapping[str, Any]) -> list[str]:
    """The reasons a fitted entry is poor by the checks on itself alone (empty: none)."""
    return [*_residual_reasons(entry, thresholds), *_bound_reasons(entry, thresholds),
            *_interval_reasons(entry, thresholds), *_extrapolation_reasons(entry, thresholds),
            *_vertex_reasons(entry), *_envelope_reasons(entry, thresholds),
            *_critical_batch_reasons(entry, thresholds)]


def not_judged(entry: dict[str, Any], thresholds: Mapping[str, Any]) -> list[str]:
    """The checks the entry lacks what they need for, and why: a good verdict claims no more."""
    missing = []
    runs = entry.get("goodness", {}).get("runs_test")
    if "params" in entry and runs and runs["n_points"] < thresholds["runs_min_points"]:
        missing.append(f"runs test: {runs['n_points']} points with a sign < {thresholds['runs_min_points']}")
    ci = entry.get("ci") or {}
    missing += [f"interval of {name}: none (no usable bootstrap resamples)"
                for name in _exponents(entry) if not ci.get(name)]
    if "skipped" in entry.get("extrapolation", {}):
        missing.append(f"extrapolation: {entry['extrapolation']['skipped']}")
    return missing


def judge_all(laws: dict[str, dict[str, Any]], compute_optimal: dict[str, Any] | None,
              thresholds: Mapping[str, Any], optimal: float | None = None) -> None:
    """Add ``quality`` {verdict, reasons, not_judged} to every fitted entry of ``laws`` (in place).

    Approach 3's a is L(N,D)'s compute-optimal allocation (``compute_optimal``); ``optimal``: the
    generator's optimal loss on the evaluation windows, where it knows one.
    """
    estimates = {name: laws[name] for name in ("approach1", "isoflop")
                 if name in laws and laws[name].get("a") is not None}
    if "L(N,D)" in laws and (compute_optimal or {}).get("a") is not None:
        estimates["L(N,D)"] = compute_optimal
    for name, entry in laws.items():
        if "skipped" in entry:
            continue
        reasons = judge(entry, thresholds) + _floor_reasons(name, entry, optimal, thresholds)
        if name in estimates:
            reasons += _approach_reasons(name, estimates, thresholds)
        entry["quality"] = {"verdict": "poor" if reasons else "good", "reasons": reasons,
                            "not_judged": not_judged(entry, thresholds)}
