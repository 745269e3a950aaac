"""The one look of every figure: theme, palettes, tick labels, notes and byte-stable saving.

Categories (laws, budgets) take seaborn's "colorblind" palette; ordered sizes (N, D) take
viridis, perceptually uniform and readable in grey and by colour-blind readers. The DAG asks
only for figures that apply (``workflow_scripts.plan.figures``); one whose input is missing all
the same (a law the fit skipped) is still drawn, with a "not available: <why>" note, so its
Snakemake outputs exist and the report says why it is empty.
"""

from __future__ import annotations

import re
import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from workflow_scripts.io import atomic_path  # noqa: E402

PNG_DPI = 200
FIGSIZE = (5.0, 3.6)
CATEGORICAL = "colorblind"
SEQUENTIAL = "viridis"
LOSS_LABEL = "validation loss (nats/token)"


def data_unit(runs) -> str:
    """What D counts in a runs table: runs.csv's ``D_unit`` ("tokens" | "samples"), tokens by default."""
    if runs is not None and "D_unit" in runs.columns and (runs["D_unit"].astype(str) == "samples").any():
        return "samples"
    return "tokens"


def loss_label(runs) -> str:
    """The loss axis: nats per token for language cells; for samples cells cross-entropy when the
    cells report an accuracy (classification), else mean squared error (regression)."""
    if data_unit(runs) == "tokens":
        return LOSS_LABEL
    accuracy = runs["val_accuracy"] if "val_accuracy" in runs.columns else None
    if accuracy is not None and accuracy.notna().any():
        return "validation loss (cross-entropy, nats)"
    return "validation loss (mean squared error)"


def style() -> None:
    """Reset to matplotlib's defaults (no matplotlibrc can leak in), then the shared theme."""
    matplotlib.rcdefaults()
    sns.set_theme(style="whitegrid", context="paper")
    plt.rcParams.update({"pdf.fonttype": 42, "savefig.bbox": "tight"})  # editable text in PDFs


def categorical(n: int) -> list:
    return sns.color_palette(CATEGORICAL, n_colors=max(n, 1))


def size_colours(values) -> dict:
    """Each distinct size → a viridis colour by rank (small dark, large yellow)."""
    values = sorted(set(values))
    return dict(zip(values, sns.color_palette(SEQUENTIAL, n_colors=max(len(values), 1))))


def human(n: float) -> str:
    """4096 → 4.1K, 2.5e6 → 2.5M, 3e16 → 3e16: short legend labels."""
    if abs(n) >= 1e15:  # FLOP budgets: past tera, an exponent reads better than "1e+04T"
        exponent = int(np.floor(np.log10(abs(n))))
        return f"{n / 10 ** exponent:.3g}e{exponent}"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


def _leading(v: float) -> int:
    return round(v / 10 ** np.floor(np.log10(v))) if v > 0 else 0


def log_axes(ax, loss_y: bool = True) -> None:
    """Log axes; sizes as 10K, 1M (with 2× and 5× over few decades); losses as plain numbers."""
    ax.set(xscale="log", yscale="log" if loss_y else ax.get_yscale())
    if loss_y:  # losses span less than a decade: label the minor ticks (2, 3, 4 …)
        plain = mticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: human(v)))
    if hi > lo > 0 and np.log10(hi / lo) < 2.5:
        minor = mticker.FuncFormatter(lambda v, _: human(v) if _leading(v) in (2, 5) else "")
        ax.xaxis.set_minor_formatter(minor)
    else:
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.tick_params(which="both", length=0, pad=3)  # minor labels in line with major ones


def legend_right(ax, title: str | None = None, **kwargs) -> None:
    """A small legend outside the axes on the right, if anything is labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title=title, fontsize="x-small", title_fontsize="x-small", frameon=True,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), **kwargs)


def optimal_loss(ax, fits: dict) -> None:
    """The generator's optimal loss as a dotted line, when the experiment knows it."""
    if fits.get("optimal_loss") is not None:
        ax.axhline(fits["optimal_loss"], ls=":", color="0.3", lw=1.2, label="optimal loss (generator)")


def wrap(text: str, width: int = 52) -> str:
    """A long legend entry (a law with its verdict and reason) over several lines."""
    return textwrap.fill(text, width, subsequent_indent="  ")


def not_available(ax, why: str, width: int = 40) -> None:
    """Say in the panel why it is empty (and keep the panel from showing meaningless ticks)."""
    # fits.json's reasons start "experiment 'x', law L(N): "; the title already says both.
    why = re.sub(r"^experiment '[^']*', law [^:]*: ", "", why)
    ax.text(0.5, 0.5, "not available:\n" + textwrap.fill(why, width), transform=ax.transAxes,
            ha="center", va="center", fontsize="small", color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def note_figure(title: str, why: str):
    """A whole figure that only says why it could not be drawn."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    not_available(ax, why)
    ax.set_title(title)
    return fig


def save(fig, out_png, out_pdf) -> None:
    """Write PNG and PDF atomically, without timestamps (same inputs, same bytes); close the figure."""
    try:
        for path, fmt in ((out_png, "png"), (out_pdf, "pdf")):
            with atomic_path(path, suffix=f".{fmt}") as tmp:
                meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
                fig.savefig(tmp, format=fmt, dpi=PNG_DPI, metadata=meta)
    finally:
        plt.close(fig)
