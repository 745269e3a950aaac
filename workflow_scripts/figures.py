"""Figures of one experiment: loss against N and against D, with the fitted laws.

Each figure is drawn from runs.csv and fits.json alone and written as PNG and PDF.
Run by hand or from Snakemake as::

    python -m workflow_scripts.figures --runs runs.csv --fits fits.json \\
        --loss-vs-n loss_vs_N.png loss_vs_N.pdf --loss-vs-d loss_vs_D.png loss_vs_D.pdf
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from workflow_scripts.io import atomic_path, read_json  # noqa: E402

PNG_DPI = 200
FIGSIZE = (5.0, 3.6)


def _style() -> None:
    # Start from matplotlib's built-in defaults, so a matplotlibrc in MPLCONFIGDIR or the
    # working directory cannot change the figures; then one theme for all of them.
    matplotlib.rcdefaults()
    sns.set_theme(style="whitegrid", context="paper")
    plt.rcParams.update({"pdf.fonttype": 42, "savefig.bbox": "tight"})  # editable text in PDFs


def _human(n: float) -> str:
    """4096 → 4.1K, 2.5e6 → 2.5M: short legend labels."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


def _leading(v: float) -> int:
    return round(v / 10 ** np.floor(np.log10(v))) if v > 0 else 0


def _usable(runs: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    """Cells the fits could use: status ok and a finite positive loss."""
    if experiment is not None and "experiment" in runs.columns:
        runs = runs[runs["experiment"].astype(str) == experiment]
    loss = pd.to_numeric(runs["val_loss"], errors="coerce")
    keep = (runs["status"] == "ok") & np.isfinite(loss) & (loss > 0)
    runs = runs[keep].copy()
    runs["val_loss"] = loss[keep].astype(float)
    return runs


def _fit_label(entry: dict[str, Any], symbol: str) -> str:
    p, ci = entry["params"], (entry.get("ci") or {}).get("alpha")
    # A zero-width interval means every usable resample was the data again (too few x).
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] != ci[1] else " [no interval]"
    return f"fit: $\\alpha_{symbol}$ = {p['alpha']:.2f}{interval}, E = {p['E']:.3g}"


def _plot(runs, fits, law: str, x_col: str, hue_col: str, x_label: str, hue_label: str, title: str):
    """Loss against x_col on log axes: a line per hue_col value (mean over seeds), seeds as points."""
    _style()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    runs = _usable(runs, fits.get("experiment"))
    hues = sorted(runs[hue_col].unique())
    # Ordered hues (sizes) read best on a sequential palette; viridis is colour-blind safe.
    palette = sns.color_palette("viridis", n_colors=max(len(hues), 1))
    for colour, hue in zip(palette, hues):
        cells = runs[runs[hue_col] == hue]
        mean = cells.groupby(x_col, as_index=False)["val_loss"].mean().sort_values(x_col)
        ax.plot(mean[x_col], mean["val_loss"], "-", color=colour, lw=1.4, label=_human(hue))
        ax.scatter(cells[x_col], cells["val_loss"], s=14, color=colour, alpha=0.6, edgecolor="none")
    entry = fits.get("laws", {}).get(law, {})
    notes = []
    if "params" in entry:
        x = runs[x_col].to_numpy(float)
        grid = np.geomspace(x.min(), x.max(), 200)
        p = entry["params"]
        ax.plot(grid, p["E"] + p["A"] * grid ** -p["alpha"], "--", color="black", lw=1.2,
                label=_fit_label(entry, law[2]))
    else:
        notes.append(f"{law} fit skipped")
    if fits.get("optimal_loss") is not None:
        ax.axhline(fits["optimal_loss"], ls=":", color="0.3", lw=1.2, label="optimal loss (generator)")
    if runs.empty:
        notes.append("no usable cells")
    ax.set(xscale="log", yscale="log", xlabel=x_label, ylabel="validation loss (nats/token)")
    # Losses span less than a decade: label the minor ticks as plain numbers (2, 3, 4 …).
    plain = mticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    # Sizes as 10K, 1M; over few decades also 2× and 5× between them, so labels never collide.
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: _human(v)))
    if np.log10(hi / lo) < 2.5:
        minor = mticker.FuncFormatter(lambda v, _: _human(v) if _leading(v) in (2, 5) else "")
        ax.xaxis.set_minor_formatter(minor)
    else:
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.tick_params(which="both", length=0, pad=3)  # minor labels in line with major ones
    ax.set_title(f"{title} — {fits.get('experiment', '')}" + (f" ({'; '.join(notes)})" if notes else ""))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(title=hue_label, fontsize="x-small", title_fontsize="x-small", frameon=True,
                  loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _save(fig, out_png, out_pdf) -> None:
    try:
        for path, fmt in ((out_png, "png"), (out_pdf, "pdf")):
            with atomic_path(path, suffix=f".{fmt}") as tmp:
                # No timestamps in the files, so rerunning on the same inputs gives the same bytes.
                meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
                fig.savefig(tmp, format=fmt, dpi=PNG_DPI, metadata=meta)
    finally:
        plt.close(fig)


def _load(runs, fits) -> tuple[pd.DataFrame, dict]:
    runs = runs if isinstance(runs, pd.DataFrame) else pd.read_csv(runs)
    fits = fits if isinstance(fits, dict) else read_json(fits)
    missing = [c for c in ("status", "val_loss", "N_nonembedding", "D") if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")
    return runs, fits


# Per figure: the law drawn, x column, hue column, x label, hue label, title.
FIGURES = {
    "loss_vs_N": ("L(N)", "N_nonembedding", "D", "non-embedding parameters N", "tokens D", "Loss vs. model size"),
    "loss_vs_D": ("L(D)", "D", "N_nonembedding", "training tokens D", "parameters N", "Loss vs. data"),
}


def plot_figure(name, runs, fits, out_png, out_pdf) -> None:
    """Draw one of ``FIGURES`` from the runs table and the fitted laws, as PNG and PDF."""
    runs, fits = _load(runs, fits)
    with plt.rc_context():  # the style stays inside this figure
        _save(_plot(runs, fits, *FIGURES[name]), out_png, out_pdf)


def plot_loss_vs_n(runs, fits, out_png, out_pdf) -> None:
    """Loss against non-embedding parameters, a line per token budget D, with the L(N) fit."""
    plot_figure("loss_vs_N", runs, fits, out_png, out_pdf)


def plot_loss_vs_d(runs, fits, out_png, out_pdf) -> None:
    """Loss against training tokens, a line per model size N, with the L(D) fit."""
    plot_figure("loss_vs_D", runs, fits, out_png, out_pdf)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="runs.csv written by workflow_scripts.aggregate")
    parser.add_argument("--fits", required=True, help="fits.json written by workflow_scripts.fit")
    parser.add_argument("--loss-vs-n", nargs=2, metavar=("PNG", "PDF"), help="loss against N")
    parser.add_argument("--loss-vs-d", nargs=2, metavar=("PNG", "PDF"), help="loss against D")
    args = parser.parse_args(argv)
    if not (args.loss_vs_n or args.loss_vs_d):
        parser.error("ask for at least one figure (--loss-vs-n and/or --loss-vs-d)")
    try:
        runs, fits = _load(args.runs, args.fits)
        if args.loss_vs_n:
            plot_loss_vs_n(runs, fits, *args.loss_vs_n)
        if args.loss_vs_d:
            plot_loss_vs_d(runs, fits, *args.loss_vs_d)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    for path in (args.loss_vs_n or []) + (args.loss_vs_d or []):
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
