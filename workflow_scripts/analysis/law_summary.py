"""How a fitted law reads: its exponents with their intervals and its fit-quality verdict; the run's summary.

A law entry of fits.json carries ``"quality": {"verdict": "good" | "poor", "reasons": [...]}``, the
fit stage's judgement of whether the law describes its cells; an entry without it reads "unknown".
This module is the one wording of a law for the figures' legends (``law_text``), fits.csv and
fits.tex (``workflow_scripts.analysis.tables``), the HTML report's summary page (``summary_rst``,
included by rules/report/workflow.rst) and the end-of-run warnings (``poor_lines``, ``sweep_lines``, from the
Snakefile's ``onsuccess``). Run by hand or from Snakemake as::

    python -m workflow_scripts.analysis.law_summary --fits results/*/fits.json --rst results/summary.rst
    python -m workflow_scripts.analysis.law_summary --fits results/*/fits.json --warn
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Iterator

from workflow_scripts.io import atomic_write_text, read_json

UNKNOWN = "unknown"
# The exponents each law is read by.
EXPONENTS = {"L(N)": ("alpha",), "L(D)": ("alpha",), "L(C)": ("alpha",), "L(N,D)": ("alpha", "beta"),
             "compute_optimal": ("a", "b"), "isoflop": ("a", "b"), "approach1": ("a", "b"),
             "kaplan_L(N,D)": ("alpha_N", "alpha_D"), "L(N,S)": ("alpha_N", "alpha_S"),
             "L(N,S_min)": ("alpha_N", "alpha_S"), "L(C_min)": ("alpha",)}
# Laws stored as allocation exponents (a, b, k_N, k_D) at the top of their entry, not as params.
ALLOCATION_LAWS = ("isoflop", "approach1")
SYMBOLS = {"alpha": "α", "beta": "β", "a": "a", "b": "b", "alpha_N": "α_N", "alpha_D": "α_D", "alpha_S": "α_S"}


def verdict(entry: dict[str, Any]) -> str:
    """good, poor, or unknown when the entry has no quality (a fits.json older than the verdicts)."""
    return (entry.get("quality") or {}).get("verdict") or UNKNOWN


def reasons(entry: dict[str, Any]) -> list[str]:
    return list((entry.get("quality") or {}).get("reasons") or [])


def verdict_note(entry: dict[str, Any]) -> str:
    """" — good", " — poor: <first reason> (+n more)", or nothing for an unknown verdict."""
    said = verdict(entry)
    if said == UNKNOWN:
        return ""
    why = reasons(entry)
    more = f" (+{len(why) - 1} more)" if len(why) > 1 else ""
    return f" — {said}" + (f": {why[0]}{more}" if why else "")


def law_values(law: str, entry: dict[str, Any]) -> dict[str, float]:
    """A fitted law's numbers: params, or the allocation exponents and coefficients."""
    if law in ALLOCATION_LAWS or law == "compute_optimal":
        return {k: entry[k] for k in ("a", "b", "k_N", "k_D") if k in entry}
    return dict(entry.get("params") or {})


def interval_text(interval) -> str:
    """" [0.28, 0.34]"; " [no interval]" without one or when every resample gave the same value."""
    if not interval or any(v is None for v in interval) or interval[0] == interval[1]:
        return " [no interval]"
    return f" [{interval[0]:.3g}, {interval[1]:.3g}]"


def exponent_text(law: str, entry: dict[str, Any]) -> str:
    """"α = 0.31 [0.28, 0.34], β = …": each exponent of the law with its bootstrap interval."""
    values, ci = law_values(law, entry), entry.get("ci") or {}
    return ", ".join(f"{SYMBOLS[k]} = {values[k]:.3g}{interval_text(ci.get(k))}"
                     for k in EXPONENTS.get(law, ()) if values.get(k) is not None)


def law_text(law: str, entry: dict[str, Any]) -> str:
    """"L(N): α = 0.31 [0.28, 0.34] — poor: <first reason>", the legend or title of a drawn law."""
    return f"{law}: {exponent_text(law, entry)}{verdict_note(entry)}"


def fitted_laws(fits: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(law, entry) of every fitted law, the L(N,D) allocation (compute_optimal) after L(N,D).

    compute_optimal is derived from L(N,D), so it reads with L(N,D)'s verdict unless it has its own.
    """
    for law, entry in fits.get("laws", {}).items():
        if "skipped" in entry:
            continue
        yield law, entry
        optimal = fits.get("compute_optimal") or {}
        if law == "L(N,D)" and optimal.get("a") is not None:
            yield "compute_optimal", {"quality": entry.get("quality"), **optimal}


def poor_lines(fits: dict[str, Any]) -> list[str]:
    """One warning line per law judged poor, naming the experiment, the law and every reason."""
    return [f"warning: experiment {fits.get('experiment')!r}, law {law} is a poor fit "
            f"({exponent_text(law, entry)}): {'; '.join(reasons(entry)) or 'no reason given'}"
            for law, entry in fitted_laws(fits) if law != "compute_optimal" and verdict(entry) == "poor"]


def sweep_lines(fits: dict[str, Any]) -> list[str]:
    """One warning line per cell whose selected setting lies at the edge of the sweep (fits.json's sweep)."""
    return [f"warning: experiment {fits.get('experiment')!r}: {line}" for line in (fits.get("sweep") or {}).get("edges", [])]


def ci_level(fits: dict[str, Any]) -> float:
    """The level of the experiment's bootstrap intervals (every law shares it)."""
    return next((e["ci_level"] for e in fits.get("laws", {}).values() if "ci_level" in e), 0.95)


def _rst(text: str) -> str:
    """Plain text safe inside reStructuredText: inline markup characters escaped."""
    for char in ("\\", "*", "`", "|", "_"):
        text = text.replace(char, "\\" + char)
    return text


def _number(value) -> str:
    return "--" if value is None or not math.isfinite(value) else f"{value:.4g}"


def experiment_rst(fits: dict[str, Any]) -> list[str]:
    """The lines of one experiment's section: a table of its laws, exponents, E and verdicts."""
    laws = list(fitted_laws(fits))
    judged = [verdict(entry) for law, entry in laws if law != "compute_optimal"]  # derived: not counted twice
    head = f"Experiment {_rst(str(fits.get('experiment')))}"
    optimal = fits.get("optimal_loss")
    lines = [head, "-" * len(head), "", f"{len(judged)} laws fitted, {judged.count('poor')} judged poor" + (
        f"; the generator's optimal loss is {optimal:.4g} nats" if optimal is not None else "") + ".", ""]
    if laws:
        rows = [["law", f"exponents [{ci_level(fits):.0%} interval]", "E", "verdict"]]
        for law, entry in laws:
            why = "; ".join(reasons(entry))
            said = "**poor**" if verdict(entry) == "poor" else verdict(entry)
            rows.append([_rst(law), _rst(exponent_text(law, entry) or "--"),
                         _number(law_values(law, entry).get("E")), said + (f": {_rst(why)}" if why else "")])
        lines += [".. list-table::", "   :header-rows: 1", ""]
        lines += [line for row in rows for line in (f"   * - {row[0]}", *(f"     - {c}" for c in row[1:]))]
        lines.append("")
    lines += sweep_rst(fits)
    skipped = [law for law, entry in fits.get("laws", {}).items() if "skipped" in entry]
    if skipped:
        lines += [f"Not fitted (reasons in fits.json): {_rst(', '.join(skipped))}.", ""]
    return lines


def sweep_text(fits: dict[str, Any]) -> str | None:
    """One sentence on a swept experiment: what was swept, the edges, the optimal rate's power law."""
    record = fits.get("sweep")
    if not record:
        return None
    text = (f"Laws fitted to the best of {len(record['settings'])} settings of {', '.join(record['keys'])} "
            f"per cell; {len(record['edges'])} of {len(record['selected'])} selections at the sweep's edge")
    lr = record.get("optimal_lr") or {}
    if lr.get("gamma") is not None:
        ci = lr.get("gamma_ci")
        interval = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else " (no interval: two sizes)"
        text += f"; optimal lr ∝ N^{lr['gamma']:.3g}{interval} over {lr['fitted_on']} sizes"
    return text + "."


def sweep_rst(fits: dict[str, Any]) -> list[str]:
    text = sweep_text(fits)
    return [_rst(text), ""] if text else []


def summary_rst(fits_list: list[dict[str, Any]]) -> str:
    """Every experiment's laws as reStructuredText sections, for the report's landing page."""
    lines = []
    for fits in fits_list:
        lines += experiment_rst(fits)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fits", nargs="+", required=True,
                        help="fits.json of each experiment (written by workflow_scripts.analysis.fit.experiment)")
    parser.add_argument("--rst", help="write the summary (reStructuredText) here")
    parser.add_argument("--warn", action="store_true",
                        help="print one warning line per poor law, and per swept cell whose selected setting is at "
                             "the sweep's edge, on stderr (fits.json files not there are passed over)")
    args = parser.parse_args(argv)
    if not args.rst and not args.warn:
        parser.error("ask for --rst PATH, --warn or both")
    try:
        present = [path for path in args.fits if args.rst or os.path.exists(path)]
        fits_list = [read_json(path) for path in present]
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    if args.rst:
        atomic_write_text(args.rst, summary_rst(fits_list))
        print(f"{len(fits_list)} experiments -> {args.rst}")
    if args.warn:
        for line in (line for fits in fits_list for line in poor_lines(fits) + sweep_lines(fits)):
            print(line, file=sys.stderr)


if __name__ == "__main__":
    main()
