"""Paper tables from fits.json: fits.csv (every parameter) and fits.tex (the exponents, booktabs).

fits.csv holds one row per law and parameter (law, parameter, value, ci_low, ci_high, ci_level,
n_points, and the law's verdict with its reasons), the compute-optimal exponents a, b of L(N,D)
under the law ``compute_optimal``; the allocation laws (isoflop, approach1) give a, b, k_N, k_D,
Kaplan's laws N_c, D_c (S_c) and α's. fits.tex is a LaTeX tabular of the exponents with their
bootstrap intervals, the irreducible loss E, each law's extrapolation error and its verdict
(good, poor, or -- where fits.json has none; ``workflow_scripts.analysis.law_summary``); it needs
``\\usepackage{booktabs}``. Run by hand or
from Snakemake as::

    python -m workflow_scripts.analysis.tables --fits results/default/fits.json --csv results/default/fits.csv \\
        --tex results/default/fits.tex
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Iterator

import pandas as pd

from workflow_scripts.analysis.law_summary import (
    ALLOCATION_LAWS, EXPONENTS, UNKNOWN, ci_level, fitted_laws, law_values, reasons, verdict,
)
from workflow_scripts.io import atomic_path, atomic_write_text, read_json

COLUMNS = ["law", "parameter", "value", "ci_low", "ci_high", "ci_level", "n_points", "verdict", "reasons"]
TEX_NAMES = {"alpha": r"\alpha", "beta": r"\beta", "a": "a", "b": "b", "alpha_N": r"\alpha_N",
             "alpha_D": r"\alpha_D", "alpha_S": r"\alpha_S"}
TEX_LAWS = {"compute_optimal": r"$N_\mathrm{opt} \propto C^a$, $D_\mathrm{opt} \propto C^b$ from $L(N,D)$",
            "isoflop": r"IsoFLOP: $N_\mathrm{opt} \propto C^a$, $D_\mathrm{opt} \propto C^b$",
            "approach1": r"Envelope (approach 1): $N_\mathrm{opt} \propto C^a$, $D_\mathrm{opt} \propto C^b$",
            "kaplan_L(N,D)": r"Kaplan $L(N,D)$", "L(N,S)": r"Kaplan $L(N,S)$",
            "L(N,S_min)": r"Kaplan $L(N,S_\mathrm{min})$", "L(C_min)": r"Kaplan $L(C_\mathrm{min})$"}


def _fitted(fits: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], int]]:
    """(law, entry, parameter values, points) of every fitted law, compute_optimal after L(N,D)."""
    points: dict[str, int] = {}
    for law, entry in fitted_laws(fits):
        if law == "compute_optimal":  # the allocation L(N,D) implies, from L(N,D)'s points
            points[law] = points["L(N,D)"]
        elif law in ALLOCATION_LAWS:
            points[law] = len(entry.get("cells_used", []))
        else:
            points[law] = entry["goodness"]["n_points"]
        yield law, entry, law_values(law, entry), points[law]


def fits_table(fits: dict[str, Any]) -> pd.DataFrame:
    """One row per law and parameter of fits.json (skipped laws have none)."""
    rows = []
    for law, entry, values, n_points in _fitted(fits):
        level = fits["laws"]["L(N,D)" if law == "compute_optimal" else law].get("ci_level")
        for name, value in values.items():
            low, high = (entry.get("ci") or {}).get(name) or (None, None)
            rows.append({"law": law, "parameter": name, "value": value, "ci_low": low, "ci_high": high,
                         "ci_level": level, "n_points": n_points, "verdict": verdict(entry),
                         "reasons": "; ".join(reasons(entry))})
    return pd.DataFrame(rows, columns=COLUMNS)


def _number(value: float) -> str:
    """Three significant digits in LaTeX math: 0.34, 1.2\\times10^{-5}."""
    if not math.isfinite(value):
        return r"\infty" if value > 0 else "--"
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, power = text.split("e")
        text = rf"{mantissa}\times10^{{{int(power)}}}"
    return text


def _with_interval(value: float, interval) -> str:
    """$0.34\\,[0.32, 0.36]$, or the value alone without an interval."""
    if not interval or any(v is None for v in interval):
        return f"${_number(value)}$"
    return f"${_number(value)}\\,[{_number(interval[0])}, {_number(interval[1])}]$"


def _extrapolation(entry: dict[str, Any]) -> str:
    error = entry.get("extrapolation", {}).get("mean_abs_relative_error")
    return "--" if error is None or not math.isfinite(error) else f"{100 * error:.2g}\\%"


def fits_tex(fits: dict[str, Any]) -> str:
    """A booktabs tabular: per law, each exponent with its interval, E, points, extrapolation error, verdict."""
    lines = [r"\begin{tabular}{llllrrl}", r"\toprule",
             rf"Law & Exponent & Value [{100 * ci_level(fits):.0f}\% CI] & $E$ & Points & Extrap. error & Verdict \\",
             r"\midrule"]
    for law, entry, values, n_points in _fitted(fits):
        said = verdict(entry)
        head = [TEX_LAWS.get(law, f"${law}$"), None, None, f"${_number(values['E'])}$" if "E" in values else "--",
                str(n_points), _extrapolation(entry), "--" if said == UNKNOWN else said]
        for i, exponent in enumerate(EXPONENTS[law]):
            cells = list(head) if i == 0 else [""] * len(head)
            interval = (entry.get("ci") or {}).get(exponent)
            cells[1:3] = [f"${TEX_NAMES[exponent]}$", _with_interval(values[exponent], interval)]
            lines.append(" & ".join(cells) + r" \\")
    notes = []
    if any(verdict(entry) == "poor" for _, entry in fitted_laws(fits)):
        notes.append("Poor fits: the reasons are in fits.csv")
    skipped = [TEX_LAWS.get(law, f"${law}$") for law, entry in fits["laws"].items() if "skipped" in entry]
    if skipped:
        notes.append(f"Not fitted (see fits.json): {', '.join(skipped)}")
    if notes:
        lines += [r"\midrule", *(rf"\multicolumn{{7}}{{l}}{{{note}}} \\" for note in notes)]
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def write_tables(fits_json, out_csv, out_tex) -> pd.DataFrame:
    """Read fits.json; write fits.csv and fits.tex atomically."""
    fits = read_json(fits_json)
    table = fits_table(fits)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    atomic_write_text(out_tex, fits_tex(fits))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fits", required=True, help="fits.json written by workflow_scripts.analysis.fit.experiment")
    parser.add_argument("--csv", required=True, help="where to write fits.csv")
    parser.add_argument("--tex", required=True, help="where to write fits.tex (booktabs)")
    args = parser.parse_args(argv)
    try:
        table = write_tables(args.fits, args.csv, args.tex)
    except (ValueError, KeyError, FileNotFoundError) as error:
        sys.exit(f"error: {args.fits}: {error}")
    print(f"{table['law'].nunique()} laws, {len(table)} parameters -> {args.csv}, {args.tex}")


if __name__ == "__main__":
    main()
