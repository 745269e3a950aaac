"""Hyperparameter sweeps as a grid axis: settings, names, the cells and their flags, bad input."""

import copy

import pytest

from tests.helpers import TINY_CONFIG
from workflow_scripts.plan.config import ConfigError, validate_config
from workflow_scripts.plan.grid import expand_grid
from workflow_scripts.plan.inputs import run_file
from workflow_scripts.plan.jobs import TrainJobs
from workflow_scripts.plan.sweep import SEED_PATTERN, cell_training, setting_name, settings


def swept(sweep, **over):
    config = copy.deepcopy(TINY_CONFIG)
    config["experiments"]["tiny"]["training"]["sweep"] = sweep
    config["experiments"]["tiny"].update(over)
    return config


def test_settings_are_the_product_of_the_lists_last_key_fastest():
    assert settings({}) == [()]
    assert settings({"beta2": [0.95, 0.99], "lr": [0.5, 2], "select": "per_cell"}) == [
        (("lr", 0.5), ("beta2", 0.95)), (("lr", 0.5), ("beta2", 0.99)),
        (("lr", 2), ("beta2", 0.95)), (("lr", 2), ("beta2", 0.99))]


def test_names_are_hive_partitions_and_match_the_seed_wildcard():
    import re
    assert setting_name((("lr", 2.0), ("beta2", 0.99))) == "lr=x2,beta2=0.99"
    assert setting_name((("lr_absolute", 0.003), ("batch_size", 32))) == "lr=0.003,batch_size=32"
    assert setting_name((("weight_decay", 1e-05),)) == "weight_decay=1e-05"
    for name in ("lr=x2,beta2=0.99/seed3", "seed0", "weight_decay=1e-05/seed1"):
        assert re.fullmatch(SEED_PATTERN, name)
    assert not re.fullmatch(SEED_PATTERN, "../seed0")


def test_a_setting_multiplies_or_replaces_the_rate_and_replaces_the_rest():
    training = {"lr": 0.01, "beta2": 0.95, "batch_size": 16}
    assert cell_training(training, (("lr", 2.0),), 0.004)["lr"] == pytest.approx(0.008)
    assert cell_training(training, (("lr_absolute", 0.1),), 0.004)["lr"] == 0.1
    out = cell_training(training, (("beta2", 0.99), ("batch_size", 8)), 0.004)
    assert (out["lr"], out["beta2"], out["batch_size"]) == (0.004, 0.99, 8)
    assert training == {"lr": 0.01, "beta2": 0.95, "batch_size": 16}  # not changed in place


def test_every_cell_trains_once_per_setting_in_its_own_folder_with_its_values():
    config = validate_config(swept({"lr": [0.5, 2], "weight_decay": [0.0, 0.1]}))
    cells = expand_grid(config)
    assert len(cells) == 3 * 2 * 4  # 3 sizes, 2 data sizes, 4 settings, 1 seed
    assert len({run_file(c, "metrics.json") for c in cells}) == len(cells)
    jobs = TrainJobs(config)
    key = ("tiny", "L1-d16-h2", "D4096", "lr=x2,weight_decay=0/seed0")
    assert run_file(jobs.cell(key), "metrics.json") == "results/tiny/runs/L1-d16-h2/D4096/lr=x2,weight_decay=0/seed0/metrics.json"
    flags = jobs.flags(key).split()
    value = lambda flag: flags[flags.index(flag) + 1]  # noqa: E731
    assert value("--setting") == "lr=x2,weight_decay=0"
    assert float(value("--lr")) == pytest.approx(2 * 0.003) and float(value("--weight-decay")) == 0.0
    assert "--sweep" not in flags


def test_an_unswept_cell_keeps_its_folder_and_flags():
    config = validate_config(copy.deepcopy(TINY_CONFIG))
    jobs = TrainJobs(config)
    key = ("tiny", "L1-d16-h2", "D4096", "seed0")
    assert run_file(jobs.cell(key), "metrics.json") == "results/tiny/runs/L1-d16-h2/D4096/seed0/metrics.json"
    assert "--setting" not in jobs.flags(key)


def test_a_swept_batch_size_sizes_the_cells_memory():
    config = validate_config(swept({"batch_size": [4, 512]}, models=[{"n_layer": 4, "d_model": 512, "n_head": 8}],
                                   data_sizes=[16384]))
    jobs = TrainJobs(config)
    small, big = (jobs.resources(("tiny", "L4-d512-h8", "D16384", f"batch_size={b}/seed0"), 1)["mem_mb"]
                  for b in (4, 512))
    assert big > small


@pytest.mark.parametrize("sweep, over, message", [
    ({"lr": []}, {}, "training.sweep.lr = []: expected at least one value"),
    ({"dropout": [0.1]}, {}, "'dropout' was unexpected"),
    ({"lr": [1, 0]}, {}, "training.sweep.lr.1 = 0: expected > 0"),
    ({"lr": [-2]}, {}, "training.sweep.lr.0 = -2: expected > 0"),
    ({"lr": [1, 1]}, {}, "training.sweep.lr = [1, 1]: expected distinct values"),
    ({"lr": [1], "lr_absolute": [0.01]}, {}, "expected no lr_absolute beside lr"),
    ({"batch_size": [8, 256]}, {}, "training.sweep.batch_size = 256: a batch of 8192 tokens"),
    ({"select": "best"}, {}, "training.sweep.select = \"best\": expected one of"),
])
def test_bad_sweeps_are_one_line_naming_the_key(sweep, over, message):
    with pytest.raises(ConfigError) as error:
        validate_config(swept(sweep, **over))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_batch_larger_than_a_samples_cells_data_is_an_error():
    config = {"datasets": {"sine": {"source": "generator", "generator": "sine",
                                    "samples": {"train": 512, "val": 64, "test": 64}}},
              "experiments": {"s": {"dataset": "sine", "model": {"family": "mlp"},
                                    "models": [{"n_layer": 1, "width": 4}], "data_sizes": [64, 256],
                                    "training": {"sweep": {"batch_size": [0, 32, 128]}}}}}
    with pytest.raises(ConfigError, match=r"sweep.batch_size = 128: a batch of 128 samples .* D = 64"):
        validate_config(config)


def test_no_batch_size_sweep_on_an_isoflop_grid():
    config = swept({"batch_size": [8, 16]}, data_sizes=[], compute_budgets=[2e7])
    with pytest.raises(ConfigError, match="expected no batch-size sweep on an IsoFLOP grid"):
        validate_config(config)


def test_only_a_swept_experiment_asks_for_the_tuning_figure():
    from workflow_scripts.plan.figures import experiment_figures

    def names(config):
        return [f.name for f in experiment_figures(validate_config(config), "tiny")]
    assert "tuning" in names(swept({"lr": [0.5, 1, 2]}))
    assert "tuning" not in names(copy.deepcopy(TINY_CONFIG))
