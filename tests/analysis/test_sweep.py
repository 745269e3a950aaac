"""Selecting a sweep's setting, the edge warning, the optimal learning rate, and what the laws read."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.analysis import sweep
from workflow_scripts.analysis.aggregate import write_runs
from workflow_scripts.analysis.cells import cell_ids, exclusions, usable_runs
from workflow_scripts.analysis.law_summary import experiment_rst, sweep_lines

MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


def u_runs(best=None, sizes=(1e3, 4e3, 1.6e4, 6.4e4), data=(1e5, 4e5), seeds=(0, 1), gamma=-0.5, jitter=(0, 0, 0, 0)):
    """A swept grid whose loss is a parabola in log lr around lr_opt = 0.1 N^gamma (times e^jitter
    per size), times a size and data term."""
    rows = []
    for n, shift in zip(sizes, jitter):
        lr_opt = 0.1 * n ** gamma * math.exp(shift) if best is None else best
        base = 0.1 * n ** gamma
        for d in data:
            for m in MULTIPLIERS:
                lr = base * m
                for s in seeds:
                    loss = (2 + 30 * n ** -0.4 + 50 * d ** -0.3) * (1 + 0.02 * math.log(lr / lr_opt) ** 2) + 1e-4 * s
                    rows.append({"experiment": "e", "model": f"m{n:.0f}", "data": f"D{d:.0f}", "seed": s,
                                 "setting": f"lr=x{m:g}", "sweep.lr": lr, "status": "ok", "val_loss": loss,
                                 "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d})
    return pd.DataFrame(rows)


def test_per_cell_selects_the_lowest_mean_loss_of_each_model_and_data():
    runs = sweep.select(u_runs())
    chosen = runs[runs["selected"]]
    assert set(chosen["setting"]) == {"lr=x1"} and len(chosen) == 4 * 2 * 2  # every (model, data), both seeds
    assert sweep.edges(runs) == []


def test_a_setting_that_diverged_on_a_seed_loses_to_one_every_seed_trained():
    runs = u_runs()
    bad = (runs["setting"] == "lr=x1") & (runs["seed"] == 1) & (runs["model"] == "m1000")
    runs.loc[bad, ["status", "val_loss"]] = ["diverged", np.nan]
    runs = sweep.select(runs)
    picked = runs[runs["selected"] & (runs["model"] == "m1000")]["setting"].unique()
    assert list(picked) in (["lr=x0.5"], ["lr=x2"])


def test_per_model_selects_at_the_largest_data_for_every_data_size():
    runs = u_runs()
    # At the small D the best rate is x0.5, at the largest x1: per_model keeps x1 at both.
    small = runs["data"] == "D100000"
    runs.loc[small & (runs["setting"] == "lr=x0.5"), "val_loss"] -= 1.0
    per_cell = sweep.select(runs, "per_cell")
    per_model = sweep.select(runs, "per_model")
    assert set(per_cell[per_cell["selected"] & small]["setting"]) == {"lr=x0.5"}
    assert set(per_model[per_model["selected"]]["setting"]) == {"lr=x1"}
    with pytest.raises(ValueError, match="select = 'best'"):
        sweep.select(runs, "best")


def test_a_selected_value_at_the_edge_of_the_sweep_is_one_warning_line_per_cell():
    runs = sweep.select(u_runs(best=1.0))  # a rate above every size's sweep: the largest is chosen
    lines = sweep.edges(runs)
    assert len(lines) == 4 * 2 and all("lr=x4" in line and "largest lr swept" in line for line in lines)
    fits = {"experiment": "e", "sweep": sweep.section(runs)}
    assert sweep_lines(fits)[0].startswith("warning: experiment 'e': m1000 D100000: the selected setting lr=x4")


def test_optimal_lr_recovers_the_power_law_of_the_sizes_optima():
    jitter = (0.1, -0.1, 0.05, -0.05)
    record = sweep.optimal_lr(sweep.select(u_runs(gamma=-0.5, jitter=jitter)))
    assert record["fitted_on"] == 4
    truth = [0.1 * n ** -0.5 * math.exp(j) for n, j in zip((1e3, 4e3, 1.6e4, 6.4e4), jitter)]
    assert [s["lr_opt"] for s in record["sizes"]] == pytest.approx(truth)  # the parabola's vertex is exact here
    assert record["gamma"] == pytest.approx(-0.5, abs=0.05)
    low, high = record["gamma_ci"]
    assert low < -0.5 < high and high - low < 0.5


def test_optimal_lr_leaves_sizes_at_the_edge_out_of_its_fit():
    runs = u_runs()
    runs.loc[runs["model"] == "m1000", "val_loss"] += 0.5 * np.log(runs["sweep.lr"])  # lower lr always better
    record = sweep.optimal_lr(sweep.select(runs))
    edge = {s["model"]: s["at_edge"] for s in record["sizes"]}
    assert edge == {"m1000": True, "m4000": False, "m16000": False, "m64000": False}
    assert record["fitted_on"] == 3 and record["gamma"] == pytest.approx(-0.5)


def test_the_laws_read_only_the_selected_cells_named_with_their_setting():
    runs = sweep.select(u_runs())
    runs.loc[runs.index[0], ["status", "val_loss"]] = ["diverged", np.nan]  # an unselected cell (x0.25)
    usable = usable_runs(runs, "e")
    assert set(usable["setting"]) == {"lr=x1"} and len(usable) == 16
    assert cell_ids(usable).iloc[0] == "m1000/D100000/lr=x1/0"
    assert exclusions(runs) == []  # the unselected cell is not the laws' to exclude


def test_aggregate_writes_the_setting_columns_and_selected(tmp_path):
    paths = []
    for m, loss in ((1, 2.0), (2, 1.9)):
        for seed in (0, 1):
            record = {"schema_version": 1, "experiment": "e", "model": "L1-d8-h2", "data": "D4096", "seed": seed,
                      "status": "ok", "setting": f"lr=x{m}", "sweep": {"lr": 0.003 * m}, "N": 100,
                      "N_nonembedding": 80, "D": 4096, "C": 1e9, "val_loss": loss + seed / 100,
                      "flops_per_token": 600}
            folder = tmp_path / "runs" / f"lr=x{m}" / f"seed{seed}"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps(record))
            (folder / "curve.csv").write_text("step,tokens,flops,eval_loss,train_loss,lr\n1,1024,1e8,2.5,2.6,0.003\n")
            paths.append(folder / "metrics.json")
    runs = write_runs(paths, tmp_path / "runs.csv", curves=tmp_path / "curves.parquet",
                      summary=tmp_path / "summary.csv")
    table = pd.read_csv(tmp_path / "runs.csv")
    assert list(table["setting"]) == ["lr=x1", "lr=x1", "lr=x2", "lr=x2"]
    assert list(table["selected"]) == [False, False, True, True] and "sweep.lr" in table.columns
    curves = pd.read_parquet(tmp_path / "curves.parquet")
    assert list(curves["selected"]) == [False, False, True, True] and "setting" in curves.columns
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["n_seeds"]) == [2, 2] and list(summary["selected"]) == [False, True]
    assert len(runs) == 4


def test_an_unswept_table_has_no_sweep_section():
    runs = u_runs().drop(columns=["setting", "sweep.lr"])
    assert not sweep.swept(runs) and sweep.section(runs) is None
    assert sweep.select(runs)["selected"].all()


def test_the_report_summary_says_what_was_swept_and_the_optimal_rates_law():
    runs = sweep.select(u_runs(jitter=(0.1, -0.1, 0.05, -0.05)))
    text = "\n".join(experiment_rst({"experiment": "e", "laws": {}, "sweep": sweep.section(runs)}))
    assert "best of 5 settings of lr per cell; 0 of 8 selections at the sweep's edge" in text
    assert "optimal lr ∝ N^-0.5" in text and "over 4 sizes" in text
