"""End-to-end: a learning-rate sweep trains one job per setting, selects the best, fits only it."""

import copy
import json

import pandas as pd
import pytest

from tests.helpers import TINY_CONFIG, write_config

pytestmark = pytest.mark.slow


def test_a_sweep_whose_best_rate_is_known_selects_it_warns_at_the_edge_and_fits_it(tmp_path, run_snakemake):
    config = copy.deepcopy(TINY_CONFIG)
    exp = config["experiments"]["tiny"]
    exp["data_sizes"] = [8192]
    # 1e-5 barely moves the weights in 32 steps: 0.01 must win everywhere, at the sweep's upper edge.
    exp["training"].update(eval_points=2, sweep={"lr_absolute": [1e-5, 0.01]})
    exp["analysis"] = {"bootstrap": 20, "laws": ["L(N)"]}
    path = write_config(tmp_path / "sweep.yaml", config)
    result = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "results" / "tiny"
    cell = out / "runs" / "L1-d16-h2" / "D8192" / "lr=1e-05" / "seed0"
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["setting"] == "lr=1e-05" and metrics["sweep"] == {"lr": 1e-05}
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and set(runs.loc[runs["selected"], "sweep.lr"]) == {0.01}
    fits = json.loads((out / "fits.json").read_text())
    assert set(fits["sweep"]["selected"].values()) == {"lr=0.01"} and len(fits["sweep"]["edges"]) == 3
    assert all("/lr=0.01/" in cell for cell in fits["laws"]["L(N)"]["cells_used"])
    assert len(fits["laws"]["L(N)"]["cells_used"]) == 3
    assert "warning: experiment 'tiny': L1-d8-h2 D8192: the selected setting lr=0.01" in result.stderr
    assert (out / "figures" / "tuning.png").exists()

    again = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
