"""Every study config under config/ stays runnable: it validates and its dry run lists its jobs."""

import pytest

from tests.helpers import REPO, planned_cells
from workflow_scripts.plan.config import load_config
from workflow_scripts.plan.grid import expand_grid

STUDIES = sorted(p.name for p in (REPO / "config").glob("*.yaml") if p.name != "schema.yaml")
# The studies the README's results section promises, each with a laptop-sized variant where the full one needs GPUs.
EXPECTED = {"config.yaml", "shakespeare.yaml", "sine.yaml", "kaplan.yaml", "kaplan-small.yaml", "wikitext.yaml",
            "wikitext-small.yaml", "mnist.yaml", "mnist-small.yaml", "mnist1d.yaml", "chinchilla.yaml",
            "chinchilla-small.yaml"}


def test_every_promised_study_has_a_config():
    assert EXPECTED <= set(STUDIES)


def test_experiment_and_dataset_names_are_unique_across_studies():
    # Outputs live under results/<experiment>/ and results/data/<dataset>/: two studies may share a
    # dataset only if they describe it identically, and never an experiment.
    experiments, datasets = {}, {}
    for name in STUDIES:
        config = load_config(REPO / "config" / name)
        for experiment in config["experiments"]:
            assert experiment not in experiments, f"{experiment} in {name} and {experiments.get(experiment)}"
            experiments[experiment] = name
        for dataset, spec in config["datasets"].items():
            assert datasets.setdefault(dataset, spec) == spec, f"dataset {dataset} differs in {name}"


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_study_dry_run_lists_every_cell(study, tmp_path, run_snakemake):
    config = load_config(REPO / "config" / study)
    cells = expand_grid(config)
    result = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(REPO / "config" / study))
    assert result.returncode == 0, result.stderr[-2000:]
    trained = planned_cells(result.stdout)
    assert len(trained) == len(set(trained)) == len(cells) > 0
