"""Figures that check the fits: residuals, parameter intervals, IsoFLOP profiles and N_opt(C).

Same contract as ``workflow_scripts.analysis.figures.curves``: (runs, fits, curves) in, a figure out, and a panel that
says "not available: <why>" where a law was skipped or an input is missing.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.curves import compute_frontier
from workflow_scripts.analysis.figures.inputs import (
    curves_table, experiment_cells, fitted_cells, law_entry, load_curves,
)
from workflow_scripts.analysis.fit import isoflops, kaplan, laws, parametric, power_law
from workflow_scripts.analysis.law_summary import (
    EXPONENTS, SYMBOLS, fitted_laws, law_text, verdict, verdict_note,
)

LAWS = ("L(N)", "L(D)", "L(N,D)", "L(C)")
ISOFLOP_BOOTSTRAP = 200  # resamples for the N_opt band; the profiles are cheap to refit
# Kaplan's joint laws and approach 1 in the parameters figure, after the laws above.
MORE_LAWS = ("kaplan_L(N,D)", "L(N,S)", "approach1", "L(N,S_min)", "L(C_min)")


def _predict(params: dict, x, d=None) -> np.ndarray:
    """The law at x: L(N, D) when it has a data term B, else E + A·x^−α."""
    return parametric.law(params, x, d) if "B" in params else power_law.law(params, x)


def _law_points(law: str, entry: dict, runs: pd.DataFrame, curves) -> tuple[pd.DataFrame | None, str]:
    """The points a law was fitted to, as columns x, y (and D for L(N, D)), or (None, why)."""
    if law == "L(C)" and not entry.get("cells_used"):  # no cells listed: the curves' frontier
        if curves is None:
            return None, "no learning curves for the frontier"
        frontier = compute_frontier(curves)
        return pd.DataFrame({"x": frontier["flops"], "y": frontier["eval_loss"]}), ""
    cells = fitted_cells(runs, entry)
    if cells.empty:
        return None, "none of its cells are in runs.csv"
    x_col = entry["x"][0] if isinstance(entry["x"], list) else entry["x"]
    points = pd.DataFrame({"x": cells[x_col], "y": cells[entry.get("y", "val_loss")]})
    if isinstance(entry["x"], list):
        points["D"] = cells[entry["x"][1]]
    return points, ""


def _why_missing(law: str, entry: dict) -> str:
    return entry.get("skipped", f"{law} is not in fits.json") if entry else f"{law} is not in fits.json"


def residuals_figure(runs, fits, curves=None):
    """log L − log L̂ of every law against its x, one panel per law."""
    ps.style()
    runs = experiment_cells(runs, fits)
    curves, _ = load_curves(curves, fits.get("experiment"))
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 5.6))
    x_labels = {"L(N)": "N (non-embedding)", "L(D)": f"D ({ps.data_unit(runs)})",
                "L(N,D)": "N (non-embedding)",
                "L(C)": "C (FLOPs, frontier)"}
    for ax, law in zip(axes.flat, LAWS):
        entry = law_entry(fits, law)
        ax.set_title(ps.wrap(law + verdict_note(entry), 60), fontsize="x-small")
        if "params" in entry:
            points, why = _law_points(law, entry, runs, curves)
        else:
            points, why = None, _why_missing(law, entry)
        if points is None:
            ps.not_available(ax, why)
            continue
        resid = np.log(points["y"]) - np.log(_predict(entry["params"], points["x"], points.get("D")))
        if "D" in points:  # L(N, D): colour by D to show a trend the N axis hides
            colours = ps.size_colours(points["D"])
            ax.scatter(points["x"], resid, s=14, c=[colours[d] for d in points["D"]], edgecolor="none")
            ax.set_title(ps.wrap(f"{law} (colour: D, dark small to light large){verdict_note(entry)}", 60),
                         fontsize="x-small")
        else:
            ax.scatter(points["x"], resid, s=14, color=ps.categorical(1)[0], edgecolor="none")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set(xlabel=x_labels[law], ylabel="log L − log fit")
        ps.log_axes(ax, loss_y=False)
    fig.suptitle(f"Fit residuals — {fits.get('experiment', '')}", fontsize="medium")
    fig.tight_layout()
    return fig


def _parameter_rows(fits: dict) -> pd.DataFrame:
    """One row per (law, parameter): value, interval ends and the panel it belongs to."""
    rows = []
    exponents = {k for keys in EXPONENTS.values() for k in keys}
    sources = [(law, law_entry(fits, law)) for law in LAWS]
    sources += [("compute-optimal", {"quality": law_entry(fits, "L(N,D)").get("quality"),
                                     **(fits.get("compute_optimal") or {})}),
                ("isoflop", law_entry(fits, "isoflop"))]
    sources += [(law, law_entry(fits, law)) for law in MORE_LAWS]
    for law, entry in sources:
        said = verdict(entry)
        mark = "" if said == "unknown" else f" ({said})"
        values = entry.get("params") or {k: entry[k] for k in ("a", "b", "G", "k_N", "k_D") if k in entry}
        for name, value in values.items():
            lo, hi = ((entry.get("ci") or {}).get(name) or (np.nan, np.nan))
            panel = "exponent" if name in exponents else "E" if name == "E" else "coefficient"
            rows.append({"law": law, "label": f"{law} {SYMBOLS.get(name, name)}{mark}", "value": value,
                         "lo": lo, "hi": hi, "panel": panel})
    return pd.DataFrame(rows, columns=["law", "label", "value", "lo", "hi", "panel"])


def parameters_figure(runs, fits, curves=None):
    """Each fitted parameter with its bootstrap interval: exponents, E, coefficients."""
    ps.style()
    title = f"Fitted parameters, {fits.get('ci_level', 0.95):.0%} intervals — {fits.get('experiment', '')}"
    rows = _parameter_rows(fits)
    if rows.empty:
        return ps.note_figure(title, "every law was skipped")
    names = [*LAWS, "compute-optimal", "isoflop", *MORE_LAWS]
    colours = dict(zip(names, ps.categorical(len(names))))
    panels = [("exponent", "exponent", "linear"), ("E", "irreducible loss E", "linear"),
              ("coefficient", "coefficient (log)", "log")]
    heights = [max((rows["panel"] == p).sum(), 1) for p, _, _ in panels]
    fig, axes = plt.subplots(3, 1, figsize=(5.5, 1.8 + 0.26 * sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for ax, (panel, label, scale) in zip(axes, panels):
        part = rows[rows["panel"] == panel].reset_index(drop=True)
        if part.empty:
            ps.not_available(ax, f"no {label}")
            continue
        y = np.arange(len(part))[::-1]
        for yi, (_, r) in zip(y, part.iterrows()):
            # A percentile bootstrap interval need not contain the estimate, so the
            # interval is drawn as its own segment rather than as error bars.
            if np.isfinite(r.lo) and np.isfinite(r.hi):
                ax.plot([r.lo, r.hi], [yi, yi], color=colours[r.law], lw=1.2, marker="|", ms=6)
            ax.plot(r.value, yi, "o", color=colours[r.law], ms=4)
        ax.set_yticks(y, part["label"], fontsize="x-small")
        ax.set_xscale(scale)
        ax.set_xlabel(label, fontsize="small")
        ax.set_ylim(-0.7, len(part) - 0.3)
        if panel == "E" and fits.get("optimal_loss") is not None:
            ax.axvline(fits["optimal_loss"], ls=":", color="0.3", lw=1.2)
            ax.text(fits["optimal_loss"], len(part) - 0.35, "optimal loss ", fontsize="xx-small",
                    color="0.3", va="top", ha="right")
    skipped = [law for law in LAWS if "params" not in law_entry(fits, law)]
    fig.suptitle(title + (f"\n(not fitted: {', '.join(skipped)})" if skipped else ""), fontsize="small")
    fig.tight_layout()
    return fig


def _isoflop_runs(runs, fits) -> tuple[pd.DataFrame | None, str]:
    """Usable cells with their planned budget C_budget (a column, or the data name C<budget>)."""
    runs = experiment_cells(runs, fits)
    if runs.empty:
        return None, "no usable cell with a compute budget"
    runs = runs.assign(C_budget=laws.budgets(runs))  # the fit stage's reading of a cell's budget
    runs = runs[runs["C_budget"] > 0]  # a data-size cell's budget is NaN
    if runs.empty:
        return None, "not an IsoFLOP grid (no C_budget, data not named C<budget>)"
    return runs, ""


def _fit_isoflops(runs: pd.DataFrame) -> dict:
    return isoflops.fit_isoflops(runs["N_nonembedding"], runs["C_budget"], runs["val_loss"],
                                 n_boot=ISOFLOP_BOOTSTRAP, seed=0)


def isoflops_figure(runs, fits, curves=None):
    """Loss against N per compute budget, the parabola in log N and its minimum (approach 2)."""
    ps.style()
    title = f"IsoFLOP profiles — {fits.get('experiment', '')}"
    runs, why = _isoflop_runs(runs, fits)
    if runs is None:
        return ps.note_figure(title, why)
    result = _fit_isoflops(runs)
    minima = {b["C"]: b for b in result.get("budgets", [])}
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    added = runs["model"].isin((fits.get("bracket") or {}).get("added_models", []))
    for budget, colour in ps.size_colours(runs["C_budget"]).items():
        cells = runs[runs["C_budget"] == budget]
        planned = cells[~added[cells.index]]
        ax.scatter(planned["N_nonembedding"], planned["val_loss"], s=14, color=colour, label=ps.human(budget))
        extra = cells[added[cells.index]]  # sizes the bracketing rounds added (experiment.bracket)
        ax.scatter(extra["N_nonembedding"], extra["val_loss"], s=30, marker="s", facecolors="none",
                   edgecolors=colour, linewidths=1.0)
        # The same parabola isoflops.parabola_minimum fits, drawn over the sizes run.
        if cells["N_nonembedding"].nunique() >= isoflops.MIN_SIZES:
            log_n = np.log(cells["N_nonembedding"].to_numpy(float))
            grid = np.linspace(log_n.min(), log_n.max(), 100)
            ax.plot(np.exp(grid), np.polyval(np.polyfit(log_n, cells["val_loss"], 2), grid), "-",
                    color=colour, lw=1.0)
        found = minima.get(float(f"{budget:.6g}"))
        if found:
            ax.plot(found["N_opt"], found["loss_min"], "X", color=colour, ms=8, mec="black", mew=0.6)
    ax.set(xlabel="non-embedding parameters N", ylabel=ps.loss_label(runs))
    ps.log_axes(ax)
    note = f" ({result['skipped']})" if "skipped" in result else " (× = parabola minimum" + (
        ", □ = sizes added to bracket it)" if added.any() else ")")
    entry = law_entry(fits, "isoflop")
    stored = f"\n{ps.wrap(law_text('isoflop', entry), 70)}" if "a" in entry else ""
    ax.set_title(title + note + stored, fontsize="small")
    ps.legend_right(ax, "budget C (FLOPs)")
    return fig


def _six_nd(runs: pd.DataFrame) -> pd.Series:
    """Compute as 6ND, the C of an IsoFLOP budget and of L(N, D)'s allocation (not exact FLOPs)."""
    return runs["C_6ND"] if "C_6ND" in runs else 6 * runs["N_nonembedding"] * runs["D"]


def n_opt_figure(runs, fits, curves=None):
    """N_opt(C): IsoFLOP minima with k_N·C^a and its bootstrap band; L(N, D)'s allocation dashed."""
    ps.style()
    title = f"Compute-optimal model size — {fits.get('experiment', '')}"
    iso_runs, why = _isoflop_runs(runs, fits)
    result = _fit_isoflops(iso_runs) if iso_runs is not None else {"skipped": why}
    optimal = fits.get("compute_optimal") or {}
    # L(N,D)'s allocation is a line only where its fit gives one (a, G are None at alpha or beta = 0).
    has_allocation = optimal.get("G") is not None and optimal.get("a") is not None
    if "skipped" in result and not has_allocation:
        return ps.note_figure(title, f"{result['skipped']}; no L(N,D) allocation in fits.json")
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    palette = ps.categorical(2)
    notes = []
    if "budgets" in result:
        c = np.array([b["C"] for b in result["budgets"]])
        grid = np.geomspace(c.min(), c.max(), 100)
        ax.scatter(c, [b["N_opt"] for b in result["budgets"]], color=palette[0], zorder=3,
                   label="IsoFLOP minima")
        ax.plot(grid, result["k_N"] * grid ** result["a"], "-", color=palette[0],
                label=f"$N_{{opt}} \\propto C^{{{result['a']:.2f}}}$ (approach 2, refit here)")
        samples = result["samples"]
        if len(samples):
            band = samples["k_N"].to_numpy()[:, None] * grid[None, :] ** samples["a"].to_numpy()[:, None]
            tail = (1 - result["ci_level"]) / 2 * 100
            lo, hi = np.percentile(band, [tail, 100 - tail], axis=0)
            ax.fill_between(grid, lo, hi, color=palette[0], alpha=0.2, lw=0,
                            label=f"{result['ci_level']:.0%} bootstrap band")
    else:
        notes.append(result["skipped"])
        c = _six_nd(experiment_cells(runs, fits)).to_numpy(float)
        grid = np.geomspace(c.min(), c.max(), 100) if c.size else np.geomspace(1e12, 1e18, 100)
    if has_allocation:
        ax.plot(grid, optimal["G"] * (grid / 6) ** optimal["a"], "--", color=palette[1],
                label=f"L(N,D): $N_{{opt}} \\propto C^{{{optimal['a']:.2f}}}$ (no band stored)")
    cells = experiment_cells(runs, fits)
    ax.scatter(_six_nd(cells), cells["N_nonembedding"], s=8, color="0.75", edgecolor="none", zorder=1,
               label="cells run")
    ax.set(xlabel="training compute C = 6ND (FLOPs)", ylabel="compute-optimal N (non-embedding)",
           yscale="log")
    ps.log_axes(ax, loss_y=False)
    ax.yaxis.set_major_formatter(ps.mticker.FuncFormatter(lambda v, _: ps.human(v)))
    # The verdicts of the laws this figure draws, as fits.json judged them.
    drawn = dict(fitted_laws(fits))  # compute_optimal: L(N,D)'s allocation, with L(N,D)'s verdict
    notes += [law_text(law, drawn[law]) for law in ("isoflop", "compute_optimal")
              if law in drawn and verdict(drawn[law]) != "unknown"]
    ax.set_title(title + "".join(f"\n{ps.wrap(note, 70)}" for note in notes), fontsize="small")
    ps.legend_right(ax)
    return fig


def _joint_panel(ax, points: pd.DataFrame, x_col: str, entry: dict, law, x_label: str, runs) -> None:
    """Loss against x_col, a colour per N (points), and the law at each N (dashed) over the points' range."""
    if "params" not in entry:
        ps.not_available(ax, _why_missing(entry.get("law", ""), entry))
        return
    for n, colour in ps.size_colours(points["N_nonembedding"]).items():
        part = points[points["N_nonembedding"] == n]
        ax.scatter(part[x_col], part["loss"], s=10, color=colour, label=ps.human(n))
        grid = np.geomspace(part[x_col].min(), part[x_col].max(), 60)
        with np.errstate(all="ignore"):
            ax.plot(grid, law(entry["params"], np.full_like(grid, n), grid), "--", color=colour, lw=0.9)
    ax.set(xlabel=x_label, ylabel=ps.loss_label(runs))
    ps.log_axes(ax)


def kaplan_figure(runs, fits, curves=None):
    """Kaplan et al. (2020): L(N, D) (Eq. 1.5) over final losses, L(N, S) (Eq. 1.6) over learning curves."""
    ps.style()
    runs = experiment_cells(runs, fits)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    nd = law_entry(fits, kaplan.ND_LAW) or {"law": kaplan.ND_LAW, "skipped": "not in fits.json"}
    finals = fitted_cells(runs, nd).rename(columns={"val_loss": "loss"})
    _joint_panel(left, finals, "D", nd, kaplan.nd_law, f"training {ps.data_unit(runs)} D", runs)
    left.set_title(ps.wrap(f"Kaplan L(N,D), Eq. 1.5 (dashed: fit per N){verdict_note(nd)}", 60),
                   fontsize="x-small")
    ns = law_entry(fits, kaplan.NS_LAW) or {"law": kaplan.NS_LAW, "skipped": "not in fits.json"}
    curves = curves_table(curves)
    if "params" in ns and curves is None:
        ns = {"law": kaplan.NS_LAW, "skipped": "no learning curves given"}
    points = (kaplan.curve_points(runs, curves, ns.get("curve_skip", 0.1)).rename(columns={"eval_loss": "loss"})
              if "params" in ns else None)
    _joint_panel(right, points, "step", ns, kaplan.ns_law, "optimizer steps S", runs)
    right.set_title(ps.wrap(f"L(N,S), Eq. 1.6, each N's longest run{verdict_note(ns)}", 60), fontsize="x-small")
    ps.legend_right(right, "parameters N")
    fig.suptitle(f"Kaplan et al. (2020) joint laws — {fits.get('experiment', '')}", fontsize="small")
    fig.tight_layout()
    return fig
