"""The tuning figure of a swept experiment (``training.sweep``): the loss against each swept value
per model size (the U-curves), the selected settings marked, and the optimal learning rate
against N with its fitted power law (``workflow_scripts.analysis.sweep.optimal_lr``).

Same contract as the other figure modules: (runs, fits, curves) in, a figure out; a panel says
"not available: <why>" where there is nothing to draw. It reads every setting, not only the
selected ones the laws use.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from workflow_scripts.analysis import sweep
from workflow_scripts.analysis.cells import usable_mask
from workflow_scripts.analysis.figures import style as ps

# Keys whose values span decades (drawn on a log axis when all are positive).
LOG_KEYS = ("lr", "batch_size", "weight_decay")


def _u_panel(ax, runs, key: str) -> None:
    curve = sweep.u_curve(runs, key)
    for n, colour in ps.size_colours(curve["N"]).items():
        part = curve[curve["N"] == n]
        ax.plot(part["value"], part["mean_loss"], "o-", ms=4, lw=1, color=colour, label=ps.human(n))
        chosen = part[part["selected"]]
        ax.scatter(chosen["value"], chosen["mean_loss"], s=90, marker="*", color=colour, edgecolor="k", zorder=3)
    if key in LOG_KEYS and (curve["value"] > 0).all():
        ax.set_xscale("log")  # a sweep spans a decade or two: ticks at 1, 2, 5 of each, plain numbers
        ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set(xlabel=f"{key} (each model at its largest D)", ylabel=ps.loss_label(runs))
    ax.set_title(f"loss against {key}; ★ selected", fontsize="x-small")
    ps.legend_right(ax, "parameters N")


def _lr_panel(ax, record: dict | None) -> None:
    if record is None:
        ps.not_available(ax, "the learning rate was not swept")
        return
    sizes = record["sizes"]
    for edge, style in ((False, dict(color="C0")), (True, dict(facecolor="none", edgecolor="C0"))):
        points = [s for s in sizes if s["at_edge"] == edge]
        if points:
            ax.scatter([s["N"] for s in points], [s["lr_opt"] for s in points], s=30, **style,
                       label="at the sweep's edge (not fitted)" if edge else "optimum (parabola in log lr)")
    title = "optimal learning rate against N"
    if record["gamma"] is not None:
        grid = np.geomspace(min(s["N"] for s in sizes), max(s["N"] for s in sizes), 50)
        ci = record["gamma_ci"]
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        ax.plot(grid, record["coefficient"] * grid ** record["gamma"], "k-", lw=1,
                label=f"lr_opt ∝ N^{record['gamma']:.2f}{interval}")
    else:
        title += f" (no power law: {record['fitted_on']} sizes with an interior optimum)"
    ax.set(xlabel="non-embedding parameters N", ylabel="peak learning rate", yscale="log")
    ps.log_axes(ax, loss_y=False)
    ax.set_title(ps.wrap(title, 60), fontsize="x-small")
    ax.legend(fontsize="x-small")


def tuning_figure(runs, fits, curves=None):
    """One U-curve panel per swept key, then the optimal learning rate against N."""
    ps.style()
    runs = runs[runs["experiment"].astype(str) == fits.get("experiment")] if "experiment" in runs.columns else runs
    record = fits.get("sweep") or {}
    keys = record.get("keys") or []
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.4 * (len(keys) + 1), 3.6), squeeze=False)
    usable = runs[usable_mask(runs)]
    if not keys or usable.empty or not sweep.swept(runs):
        ps.not_available(axes[0][0], "no swept setting in runs.csv (training.sweep)")
    for ax, key in zip(axes[0], keys):
        _u_panel(ax, usable, key)
    _lr_panel(axes[0][-1], record.get("optimal_lr"))
    fig.tight_layout()
    return fig
