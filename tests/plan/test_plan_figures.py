"""The figure catalog: one list read by the DAG (workflow_scripts.plan.figures) and the figures CLI,
and only the figures that apply to an experiment asked for."""

import copy
import subprocess
import sys

import pytest

from tests.helpers import REPO, TINY_CONFIG, write_config
from workflow_scripts.analysis.figures.draw import FIGURES, catalog_names
from workflow_scripts.plan import figures as plan_figures
from workflow_scripts.plan.config import load_config, validate_config
from workflow_scripts.plan.figures import catalog, experiment_figures, figure_outputs, fitted_laws


def names(config, experiment):
    return [figure.name for figure in experiment_figures(config, experiment)]


def test_one_list_for_the_rules_the_code_and_the_captions():
    assert [f.name for f in catalog()] == catalog_names() == list(FIGURES)
    for figure in catalog():
        assert (REPO / "rules" / "report" / figure.caption).is_file(), figure
        assert figure.label


def test_language_data_grid_gets_no_accuracy_and_no_isoflop_figure():
    config = load_config(REPO / "config" / "config.yaml")
    got = names(config, "synthetic")
    assert "accuracy_vs_C" not in got and "isoflops" not in got
    assert {"loss_vs_N", "loss_vs_D", "loss_vs_C", "learning_curves", "kaplan", "approach1", "N_opt"} <= set(got)
    assert figure_outputs(config)[:2] == ["results/synthetic/figures/loss_vs_N.png",
                                          "results/synthetic/figures/loss_vs_N.pdf"]


def test_isoflop_grid_classifier_and_named_laws():
    chinchilla = load_config(REPO / "config" / "chinchilla-small.yaml")
    assert "isoflops" in names(chinchilla, "chinchilla_small")
    assert "accuracy_vs_C" in names(load_config(REPO / "config" / "mnist1d.yaml"), "mnist1d")
    sine = load_config(REPO / "config" / "sine.yaml")  # laws: [L(D)] only, a regression
    assert names(sine, "sine_D") == ["loss_vs_D", "learning_curves", "residuals", "parameters"]


def test_default_laws_leave_out_a_single_valued_axis():
    config = copy.deepcopy(TINY_CONFIG)
    config["experiments"]["tiny"]["models"] = config["experiments"]["tiny"]["models"][:1]
    config = validate_config(config)
    laws = fitted_laws(config["experiments"]["tiny"])
    assert "L(N)" not in laws and "L(N,D)" not in laws and "L(D)" in laws and "isoflop" not in laws
    assert "loss_vs_N" not in names(config, "tiny") and "loss_vs_D" in names(config, "tiny")


def test_a_bad_catalog_entry_is_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "figures.yaml"
    bad.write_text("loss_vs_N: {label: x, caption: loss_vs_N.rst, laws: ['L(Q)']}\n")
    monkeypatch.setattr(plan_figures, "CATALOG_PATH", bad)
    catalog.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"figure 'loss_vs_N' has \['laws: L\(Q\)'\]; expected"):
            catalog()
    finally:
        catalog.cache_clear()


def test_planning_side_imports_without_plotting_or_torch():
    blocked = "import sys; [sys.modules.__setitem__(m, None) for m in ('matplotlib', 'torch', 'pandas', 'seaborn')]"
    result = subprocess.run([sys.executable, "-c", f"{blocked}; from workflow_scripts.plan.figures import catalog; "
                             "print(len(catalog()))"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == str(len(FIGURES)), result.stderr


def test_the_dag_asks_only_for_what_applies(tmp_path, run_snakemake):
    path = write_config(tmp_path / "c.yaml", copy.deepcopy(TINY_CONFIG))
    dry = run_snakemake(tmp_path, "-n", "--configfile", str(path))
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "rule figure_loss_vs_N:" in dry.stdout and "rule summary:" in dry.stdout
    assert "figure_isoflops" not in dry.stdout and "figure_accuracy_vs_C" not in dry.stdout
