"""A law's verdict as every output reads it: figures, fits.csv/fits.tex, the report's summary, the warnings."""

import json
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
from docutils.core import publish_parts

from tests.helpers import REPO, SMALL_GRID, runs_table
from workflow_scripts.analysis.figures.draw import FIGURES
from workflow_scripts.analysis.fit.experiment import fit_experiment
from workflow_scripts.analysis.law_summary import interval_text, law_text, main, poor_lines, summary_rst, verdict
from workflow_scripts.analysis.tables import fits_table, fits_tex

POOR = {"verdict": "poor", "reasons": ["E = 5e-10 is at its lower bound 1e-09", "runs test p = 0.002 < 0.05"]}


@pytest.fixture(scope="module")
def judged():
    """fits.json with L(N) judged poor, L(D) good and the other laws without a verdict (older fits)."""
    fits = json.loads(json.dumps(fit_experiment(runs_table(), n_boot=20, parametric_grid=SMALL_GRID)))
    for entry in fits["laws"].values():
        entry.pop("quality", None)
    fits["laws"]["L(N)"]["quality"] = POOR
    fits["laws"]["L(D)"]["quality"] = {"verdict": "good", "reasons": []}
    return fits


def test_law_text_names_exponent_interval_and_first_reason(judged):
    entry = judged["laws"]["L(N)"]
    assert law_text("L(N)", entry) == (f"L(N): α = {entry['params']['alpha']:.3g}{interval_text(entry['ci']['alpha'])}"
                                       " — poor: E = 5e-10 is at its lower bound 1e-09 (+1 more)")
    assert interval_text([0.28, 0.34]) == " [0.28, 0.34]" and interval_text([0.3, 0.3]) == " [no interval]"
    assert law_text("L(D)", judged["laws"]["L(D)"]).endswith(" — good")
    assert verdict(judged["laws"]["L(C)"]) == "unknown" and "—" not in law_text("L(C)", judged["laws"]["L(C)"])


def test_tables_carry_the_verdict(judged):
    table = fits_table(judged)
    by_law = table.groupby("law")["verdict"].first()
    assert by_law["L(N)"] == "poor" and by_law["L(D)"] == "good" and by_law["L(C)"] == "unknown"
    assert table.query("law == 'L(N)'")["reasons"].iloc[0] == "; ".join(POOR["reasons"])
    row = next(line for line in fits_tex(judged).splitlines() if line.startswith("$L(N)$"))
    assert row.split("&")[-1].strip() == r"poor \\" and "reasons are in fits.csv" in fits_tex(judged)


def test_one_warning_line_per_poor_law(judged, tmp_path, capsys):
    lines = poor_lines(judged)
    assert len(lines) == 1 and lines[0].startswith("warning: experiment 'synth', law L(N) is a poor fit (α = ")
    assert lines[0].endswith("E = 5e-10 is at its lower bound 1e-09; runs test p = 0.002 < 0.05")
    (tmp_path / "a.json").write_text(json.dumps(judged))
    main(["--warn", "--fits", str(tmp_path / "a.json"), str(tmp_path / "not_yet.json")])  # absent: passed over
    assert capsys.readouterr().err.splitlines() == lines


def test_summary_is_valid_rst_with_every_law(judged, tmp_path):
    other = {**judged, "experiment": "other_*_exp", "laws": {"L(N)": {"law": "L(N)", "skipped": "too few"}}}
    (tmp_path / "a.json").write_text(json.dumps(judged))
    (tmp_path / "b.json").write_text(json.dumps(other))
    main(["--fits", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--rst", str(tmp_path / "summary.rst")])
    text = (tmp_path / "summary.rst").read_text()
    assert text == summary_rst([judged, other])
    html = publish_parts(text, writer="html", settings_overrides={"halt_level": 2})["html_body"]
    assert "Experiment synth" in html and "Experiment other_*_exp" in html  # escaped, not emphasis
    assert html.count("<strong>poor</strong>") == 1 and "at its lower bound" in html
    assert "Not fitted (reasons in fits.json): L(N)" in html
    fitted = {law for law, entry in judged["laws"].items() if "skipped" not in entry}
    assert all(f"<td>{law}</td>" in html for law in fitted)


@pytest.mark.parametrize("name", ["loss_vs_N", "residuals", "parameters"])
def test_figures_show_the_verdict(judged, name):
    fig = FIGURES[name](runs_table(), judged)
    texts = [t.get_text() for ax in fig.axes for t in (ax.title, *(ax.get_legend().get_texts() if ax.get_legend()
                                                                  else ()))]
    texts += [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    plt.close("all")
    assert any("poor" in t for t in texts), texts


def test_report_landing_page_includes_the_summary(judged, tmp_path):
    # Rendered as Snakemake renders the workflow description: Jinja (its options), then docutils.
    jinja2 = pytest.importorskip("jinja2")
    (tmp_path / "summary.rst").write_text(summary_rst([judged]))
    records = {"Summary": {"": [SimpleNamespace(name="summary.rst", path=tmp_path / "summary.rst")]},
               "synth": {"": [SimpleNamespace(name="fits.csv", path=tmp_path / "fits.csv")]}}
    template = (REPO / "rules" / "report" / "workflow.rst").read_text() + "\n.. _Workflow: javascript:void(0)\n"
    rst = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(template).render(
        snakemake=None, categories=records, files=[])
    html = publish_parts(rst, writer="html", settings_overrides={"halt_level": 2})["html_body"]
    assert "Experiment synth" in html and html.count("<strong>poor</strong>") == 1
