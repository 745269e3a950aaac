"""End-to-end: an IsoFLOP grid that brackets its optimum grows its own DAG through a Snakemake checkpoint."""

import copy
import json

import pandas as pd
import pytest

from tests.helpers import TINY_CONFIG, write_config

pytestmark = pytest.mark.slow


def test_a_round_adds_the_sizes_its_vertices_ask_for_and_a_rerun_has_nothing_to_do(tmp_path, run_snakemake):
    config = copy.deepcopy(TINY_CONFIG)
    # Two sizes per budget have no parabola: the lower loss always points to a side, so round 0
    # must add the sweep's next size there (d 4 below or d 32 above), at both budgets.
    config["experiments"] = {"iso": {
        "dataset": "synthetic", "tokenizer": "char", "model": {"context": 32},
        "size_sweep": {"base": {"n_layer": 1, "d_model": 8, "n_head": 2}, "scale": "d_model", "factor": 2.0,
                       "count": 2, "multiple_of": 2},
        "compute_budgets": [2.0e7, 4.0e7], "bracket": {"rounds": 1},
        "training": {"batch_size": 8, "eval_tokens": 2048, "eval_points": 2},
        "analysis": {"bootstrap": 20, "laws": ["isoflop"]}}}
    path = write_config(tmp_path / "iso.yaml", config)
    result = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "results" / "iso"
    record = json.loads((out / "bracket" / "round0.json").read_text())
    assert len(record["extend"]) == 1 and [b["n_sizes"] for b in record["budgets"]] == [2, 2]
    added = {"below": "L1-d4-h2", "above": "L1-d32-h2"}[record["extend"][0]]
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["model"].unique()) == sorted(["L1-d8-h2", "L1-d16-h2", added])
    assert (runs.groupby("C_budget")["model"].nunique() == 3).all()
    fits = json.loads((out / "fits.json").read_text())
    assert fits["bracket"]["added_models"] == [added] and fits["bracket"]["rounds_run"] == 1
    assert fits["bracket"]["rounds"][0]["extend"] == record["extend"]
    assert (out / "figures" / "isoflops.png").exists()

    again = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
