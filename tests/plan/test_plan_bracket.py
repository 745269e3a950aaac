import copy
import json

import pytest

from workflow_scripts.plan import bracket
from workflow_scripts.plan.config import ConfigError, validate_config
from workflow_scripts.plan.grid import size_sweep, sweep_size

SWEEP = {"base": {"n_layer": 2, "d_model": 16, "n_head": 2}, "scale": "d_model", "factor": 2.0, "count": 3,
         "multiple_of": 2, "aspect_ratio": 0, "head_dim": 0}


def experiment(rounds=2, per_round=1):
    return {"size_sweep": SWEEP, "models": size_sweep(SWEEP),
            "bracket": {"rounds": rounds, "sizes_per_round": per_round}}


def widths(sizes):
    return [s["d_model"] for s in sizes]


def test_the_sweep_continues_past_both_ends():
    assert [sweep_size(SWEEP, k) for k in range(3)] == size_sweep(SWEEP)
    assert [sweep_size(SWEEP, k)["d_model"] for k in (-3, -2, -1, 3, 4)] == [2, 4, 8, 128, 256]


def test_each_round_adds_the_next_sizes_on_the_sides_it_names():
    exp = experiment(per_round=2)
    records = [{"round": 0, "extend": ["above"]}, {"round": 1, "extend": ["below", "above"]}]
    assert widths(bracket.added_sizes(exp, records[:1])) == [128, 256]
    assert widths(bracket.added_sizes(exp, records)) == [128, 256, 8, 4, 512, 1024]
    assert bracket.added_sizes(exp, [{"round": 0, "extend": []}]) == []
    # Rounding to multiple_of repeats the smallest size: it is added once.
    low = experiment(per_round=4)
    assert widths(bracket.added_sizes(low, [{"round": 0, "extend": ["below"]}])) == [8, 4, 2]
    with pytest.raises(ValueError, match="extend side 'left'"):
        bracket.added_sizes(exp, [{"round": 0, "extend": ["left"]}])


def test_records_on_disk_stop_at_the_first_round_that_extends_nothing(tmp_path):
    exp = experiment(rounds=3)
    for r, extend in enumerate((["above"], [], ["below"])):
        path = tmp_path / bracket.round_file("iso", r)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"round": r, "extend": extend}))
    assert [r["round"] for r in bracket.records_on_disk("iso", exp, tmp_path)] == [0, 1]
    assert bracket.records_on_disk("iso", experiment(rounds=0), tmp_path) == []
    assert bracket.records_on_disk("other", exp, tmp_path) == []


def test_bracketing_needs_an_isoflop_sweep(tiny_config):
    config = copy.deepcopy(tiny_config)
    config["experiments"]["tiny"]["bracket"] = {"rounds": 1}
    with pytest.raises(ConfigError, match=r"experiments.tiny.bracket.rounds = 1: expected 0 without both "
                                          r"compute_budgets and a size_sweep") as info:
        validate_config(config)
    assert "\n" not in str(info.value)


def test_a_round_whose_sizes_no_budget_admits_adds_no_cell_and_ends_the_rounds():
    from tests.helpers import TINY_CONFIG
    from workflow_scripts.plan.jobs import TrainJobs

    config = copy.deepcopy(TINY_CONFIG)
    config["experiments"] = {"iso": {
        "dataset": "synthetic", "tokenizer": "char", "model": {"context": 32},
        "size_sweep": {"base": {"n_layer": 1, "d_model": 8, "n_head": 2}, "scale": "d_model", "factor": 2.0,
                       "count": 2, "multiple_of": 2},
        "compute_budgets": [2.0e8, 4.0e8], "tokens_per_parameter": [0.2, 300], "bracket": {"rounds": 2},
        "training": {"batch_size": 8}}}
    config["datasets"]["synthetic"]["symbols"]["train"] = 400000  # planned only: nothing is generated
    config = validate_config(config)
    exp, jobs = config["experiments"]["iso"], TrainJobs(config)
    # Width 4 has so few parameters that D / N exceeds 300 at both budgets; width 32 fits (0.22, 0.43).
    assert not jobs.round_adds_cells("iso", exp, [{"round": 0, "extend": ["below"]}])
    assert jobs.round_adds_cells("iso", exp, [{"round": 0, "extend": ["above"]}])
    assert len(jobs.bracketed_cells("iso", exp, [{"round": 0, "extend": ["above"]}])) > len(
        jobs.bracketed_cells("iso", exp, []))
