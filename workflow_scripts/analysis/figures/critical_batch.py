"""The critical batch size figure: the noise scale against the loss with B_crit(L) (Kaplan et al. 2020,
Eq. 5.3), and the laws in S_min and C_min it adjusts (Eq. 5.4-5.5, ``workflow_scripts.analysis.fit.critical_batch``).

Same contract as the other figure modules: (runs, fits, curves) in, a figure out, a panel saying
"not available: <why>" where a law was skipped or an input is missing.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.fits import _joint_panel
from workflow_scripts.analysis.figures.inputs import curves_table, experiment_cells, law_entry
from workflow_scripts.analysis.fit import critical_batch as cb
from workflow_scripts.analysis.fit import kaplan, power_law
from workflow_scripts.analysis.law_summary import verdict_note


def _entry(fits, law):
    return law_entry(fits, law) or {"law": law, "skipped": "not in fits.json"}


def _noise_panel(ax, runs, curves, record, skip) -> None:
    points = cb.noise_points(runs, curves, skip)
    for n, colour in ps.size_colours(points["N_nonembedding"]).items():
        part = points[points["N_nonembedding"] == n]
        ax.scatter(part["eval_loss"], part["noise_scale"], s=10, color=colour, label=ps.human(n))
    grid = np.geomspace(points["eval_loss"].min(), points["eval_loss"].max(), 60)
    p = record["params"]
    ax.plot(grid, cb.b_crit(p, grid), "k-", lw=1, label=f"B*={p['B_star']:.3g}, α_B={p['alpha_B']:.3g}")
    for b in sorted(points["batch_size"].dropna().unique()):
        ax.axhline(b, color="grey", ls=":", lw=0.8)
    ax.set(xlabel=ps.loss_label(runs), ylabel="noise scale B_simple (windows)", xscale="log", yscale="log")
    plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")  # losses span less than a decade: plain numbers
    ax.xaxis.set_major_locator(mticker.MaxNLocator(5))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(mticker.NullLocator())


def _c_min_panel(ax, runs, curves, entry) -> None:
    points = cb.adjusted(runs, curves, entry["critical_batch"]["params"])
    points = points[(points["step"] > 0) & (points["eval_loss"] > 0)]
    ax.scatter(points["C_min"], points["eval_loss"], s=4, color="lightgrey", label="curve points")
    front = cb.envelope(points.dropna(subset=["C_min", "eval_loss"]))
    ax.scatter(front["C_min"], front["eval_loss"], s=14, color="C0", label="envelope (fitted)")
    grid = np.geomspace(front["C_min"].min(), front["C_min"].max(), 60)
    ax.plot(grid, power_law.law(entry["params"], grid), "k-", lw=1, label=f"α={entry['params']['alpha']:.3g}")
    ax.set(xlabel="C_min = 6 N E_min (FLOPs)", ylabel=ps.loss_label(runs))
    ps.log_axes(ax)


def critical_batch_figure(runs, fits, curves=None):
    """B_simple vs. L with B_crit(L); L(N, S_min); L(C_min) on the envelope of the curves."""
    ps.style()
    runs = experiment_cells(runs, fits)
    curves = curves_table(curves)
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(12.0, 3.6))
    ns, cm = _entry(fits, cb.NS_MIN_LAW), _entry(fits, cb.C_MIN_LAW)
    if curves is None:
        ns = cm = {"law": cb.NS_MIN_LAW, "skipped": "no learning curves given"}
    fitted = next((e for e in (ns, cm) if "critical_batch" in e), None)
    if fitted is None:
        ps.not_available(left, ns.get("skipped", "no critical batch size fitted"))
    else:
        _noise_panel(left, runs, curves, fitted["critical_batch"], fitted["critical_batch"]["curve_skip"])
        ps.legend_right(left, "parameters N")
    left.set_title("noise scale and B_crit(L), Eq. 5.3", fontsize="x-small")
    points = None
    if "params" in ns:
        points = cb.adjusted(runs, curves, ns["critical_batch"]["params"])
        points = kaplan.curve_points(runs, points, ns["curve_skip"]).rename(columns={"eval_loss": "loss"})
    _joint_panel(middle, points, "S_min", ns, kaplan.ns_law, "steps at the critical batch S_min", runs)
    middle.set_title(ps.wrap(f"L(N,S_min), Eq. 1.6 and 5.4{verdict_note(ns)}", 60), fontsize="x-small")
    if "params" in cm:
        _c_min_panel(right, runs, curves, cm)
        right.legend(fontsize="x-small")
    else:
        ps.not_available(right, cm.get("skipped", ""))
    right.set_title(ps.wrap(f"L(C_min), Eq. 1.3 and 5.5{verdict_note(cm)}", 60), fontsize="x-small")
    fig.suptitle(f"Kaplan et al. (2020) critical batch size — {fits.get('experiment', '')}", fontsize="small")
    fig.tight_layout()
    return fig
