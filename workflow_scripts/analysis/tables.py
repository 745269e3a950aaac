"""Paper tables from fits.json: fits.csv (every parameter) and fits.tex (the exponents, booktabs).

fits.csv holds one row per law and parameter (law, parameter, value, ci_low, ci_high, ci_level,
n_points), the compute-optimal exponents a, b of L(N,D) under the law ``compute_optimal``; the
allocation laws (isoflop, approach1) give a, b, k_N, k_D, Kaplan's laws N_c, D_c (S_c) and α's.
fits.tex is a LaTeX tabular of the exponents with their bootstrap intervals, the irreducible
loss E and each law's extrapolation error; it needs ``\\usepackage{booktabs}``. Run by hand or
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

from workflow_scripts.io import atomic_path, atomic_write_text, read_json

COLUMNS = ["law", "parameter", "value", "ci_low", "ci_high", "ci_level", "n_points"]
# The exponents shown in fits.tex, per law.
EXPONENTS = {"L(N)": ("alpha",), "L(D)": ("alpha",), "L(C)": ("alpha",), "L(N,D)": ("alpha", "beta"),
             "compute_optimal": ("a", "b"), "isoflop": ("a", "b"), "approach1": ("a", "b"),
             "kaplan_L(N,D)": ("alpha_N", "alpha_D"), "L(N,S)": ("alpha_N", "alpha_S")}
TEX_NAMES = {"alpha": r"\alpha", "beta": r"\beta", "a": "a", "b": "b", "alpha_N": r"\alpha_N",
             "alpha_D": r"\alpha_D", "alpha_S": r"\alpha_S"}
# Laws stored as allocation exponents (a, b, k_N, k_D), not as a loss law's params.
ALLOCATION_LAWS = ("isoflop", "approach1")
TEX_LAWS = {"compute_optimal": r"$N_\mathrm{opt} \propto C^a$, $D_\mathrm{opt} \propto C^b$ from $L(N,D)$",
            "isoflop": r"IsoFLOP: $N_\mathrm{opt} \propto C^a$, $D_\mathrm{opt} \propto C^b$",
            "approach1": r"Envelope (approach 1): $N_\mathrm{opt} \propto C^a$, $D_\mathrm{opt} \propto C^b$",
            "kaplan_L(N,D)": r"Kaplan $L(N,D)$", "L(N,S)": r"Kaplan $L(N,S)$"}


def _fitted(fits: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], int | None]]:
    """(law, parameter values, intervals, points) of every fitted law, compute_optimal after L(N,D)."""
    for law, entry in fits["laws"].items():
        if "skipped" in entry:
            continue
        if law in ALLOCATION_LAWS:
            values = {k: entry[k] for k in ("a", "b", "k_N", "k_D")}
            yield law, values, entry.get("ci", {}), len(entry.get("cells_used", []))
            continue
        n_points = entry["goodness"]["n_points"]
        yield law, entry["params"], entry.get("ci", {}), n_points
        optimal = fits.get("compute_optimal", {})
        if law == "L(N,D)" and optimal.get("a") is not None:
            yield "compute_optimal", {k: optimal[k] for k in ("a", "b")}, optimal.get("ci", {}), n_points


def fits_table(fits: dict[str, Any]) -> pd.DataFrame:
    """One row per law and parameter of fits.json (skipped laws have none)."""
    rows = []
    for law, values, ci, n_points in _fitted(fits):
        level = fits["laws"]["L(N,D)" if law == "compute_optimal" else law].get("ci_level")
        for name, value in values.items():
            low, high = (ci or {}).get(name) or (None, None)
            rows.append({"law": law, "parameter": name, "value": value, "ci_low": low, "ci_high": high,
                         "ci_level": level, "n_points": n_points})
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
    """A booktabs tabular: per law, each exponent with its interval, E, points and extrapolation error."""
    level = next((e["ci_level"] for e in fits["laws"].values() if "ci_level" in e), 0.95)
    lines = [r"\begin{tabular}{llllrr}", r"\toprule",
             rf"Law & Exponent & Value [{100 * level:.0f}\% CI] & $E$ & Points & Extrap. error \\",
             r"\midrule"]
    for law, values, ci, n_points in _fitted(fits):
        entry = fits["laws"].get(law, {})
        name = TEX_LAWS.get(law, f"${law}$")
        head = [name, None, None, f"${_number(values['E'])}$" if "E" in values else "--", str(n_points),
                _extrapolation(entry)]
        for i, exponent in enumerate(EXPONENTS[law]):
            cells = list(head) if i == 0 else [""] * len(head)
            interval = (ci or {}).get(exponent)
            cells[1:3] = [f"${TEX_NAMES[exponent]}$", _with_interval(values[exponent], interval)]
            lines.append(" & ".join(cells) + r" \\")
    skipped = [TEX_LAWS.get(law, f"${law}$") for law, entry in fits["laws"].items() if "skipped" in entry]
    if skipped:
        note = f"Not fitted (see fits.json): {', '.join(skipped)}"
        lines += [r"\midrule", rf"\multicolumn{{6}}{{l}}{{{note}}} \\"]
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
