"""Loss against model size N and against data size D, with the fitted L(N) and L(D).

Same contract as the other figure modules: (runs, fits, curves) in, a figure out (curves unused here).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.inputs import experiment_cells, law_entry
from workflow_scripts.analysis.fit.power_law import law as power_law
from workflow_scripts.analysis.law_summary import law_text

# Per figure: the law drawn, x column, hue column, x label, hue label, title.
AXES = {
    "loss_vs_N": ("L(N)", "N_nonembedding", "D", "non-embedding parameters N", "{unit} D", "Loss vs. model size"),
    "loss_vs_D": ("L(D)", "D", "N_nonembedding", "training {unit} D", "parameters N", "Loss vs. data"),
}


def _seed_lines(ax, runs, x_col: str, hue_col: str) -> None:
    """A line per hue_col value through the seed means; with several seeds a min–max bar at each point
    (rather than a standard deviation: there are rarely more than three seeds)."""
    for hue, colour in ps.size_colours(runs[hue_col]).items():
        stats = (runs[runs[hue_col] == hue].groupby(x_col)["val_loss"]
                 .agg(["mean", "min", "max", "count"]).sort_index())
        x = stats.index.to_numpy(float)
        ax.plot(x, stats["mean"], "-o", color=colour, lw=1.4, ms=3, label=ps.human(hue))
        many = stats["count"].to_numpy() > 1
        if many.any():
            spread = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]])[:, many]
            ax.errorbar(x[many], stats["mean"][many], yerr=spread, fmt="none", ecolor=colour,
                        elinewidth=1.0, capsize=2)


def size_figure(name: str, runs, fits):
    """Loss against x on log axes (``AXES[name]``), a line per hue, the law dashed with its verdict."""
    law, x_col, hue_col, x_label, hue_label, title = AXES[name]
    ps.style()
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    runs = experiment_cells(runs, fits)
    _seed_lines(ax, runs, x_col, hue_col)
    entry = law_entry(fits, law)
    notes = []
    if "params" in entry and not runs.empty:
        x = runs[x_col].to_numpy(float)
        grid = np.geomspace(x.min(), x.max(), 200)
        ax.plot(grid, power_law(entry["params"], grid), "--", color="black", lw=1.2,
                label=ps.wrap(law_text(law, entry)))
    elif "params" not in entry:
        notes.append(f"{law} fit skipped")
    ps.optimal_loss(ax, fits)
    if runs.empty:
        notes.append("no usable cells")
    unit = ps.data_unit(runs)
    ax.set(xlabel=x_label.format(unit=unit), ylabel=ps.loss_label(runs))
    ps.log_axes(ax)
    seeds = int(runs.groupby([x_col, hue_col]).size().max()) if not runs.empty else 0
    if seeds > 1:
        notes.append(f"bars: min–max over ≤{seeds} seeds")
    ax.set_title(f"{title} — {fits.get('experiment', '')}" + (f" ({'; '.join(notes)})" if notes else ""),
                 fontsize="small")
    ps.legend_right(ax, hue_label.format(unit=unit))
    return fig


def loss_vs_n_figure(runs, fits, curves=None):
    """Loss against non-embedding parameters, a line per data size D, with the L(N) fit."""
    return size_figure("loss_vs_N", runs, fits)


def loss_vs_d_figure(runs, fits, curves=None):
    """Loss against training data, a line per model size N, with the L(D) fit."""
    return size_figure("loss_vs_D", runs, fits)
