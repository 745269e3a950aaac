"""Packs of small cells (workflow_scripts.plan.packs): which cells, the rule's files, the job's command."""

import copy
import shlex

from tests.helpers import REPO
from workflow_scripts.plan.config import load_config, validate_config
from workflow_scripts.plan.flags import job_flags
from workflow_scripts.plan.inputs import run_file
from workflow_scripts.plan.jobs import TrainJobs
from workflow_scripts.plan.packs import PACK_CELLS, PACK_FLOPS
from workflow_scripts.plan.resources import SMALL_CELL_FLOPS, cell_flops
from workflow_scripts.train.cell_config import SamplesConfig, parse_flags


def test_packs_hold_small_cells_once_each_within_their_bound():
    jobs = TrainJobs(load_config(REPO / "config" / "sine.yaml"))
    assert {p.rule for p in jobs.packs} == {f"train_pack_{e}_0" for e in ("sine_N", "sine_D", "sine_noisy_N",
                                                                          "sine_noisy_D")}
    packed = [(p.experiment, *cell) for p in jobs.packs for cell in p.cells]
    assert len(packed) == len(set(packed))
    for pack in jobs.packs:
        costs = [cell_flops(jobs.config, c) for c in jobs.pack_cells(pack, "seed1")]
        assert 2 <= len(costs) <= PACK_CELLS and sum(costs) <= PACK_FLOPS and max(costs) < SMALL_CELL_FLOPS
    # The widest size trains alone: above the threshold (8.1e11 FLOPs with sine's one input per sample).
    assert all(model != "mlp-L2-w256" for _, model, _ in packed) and ("sine_N", "mlp-L2-w128", "D2048") in packed
    assert ("sine_N", "mlp-L2-w2", "D2048") in packed


def test_no_packs_when_switched_off_on_gpus_or_for_branched_cells():
    config = load_config(REPO / "config" / "sine.yaml")
    for change in ({"resources": {"pack": False}}, {"resources": {"gpu": 1}}):
        raw = copy.deepcopy(config)
        for exp in raw["experiments"].values():
            exp["resources"] = {**exp["resources"], **change["resources"]}
        assert TrainJobs(validate_config(raw)).packs == []
    raw = load_config(REPO / "config" / "config.yaml")
    assert TrainJobs(raw).packs
    raw["experiments"]["synthetic"]["training"].update(schedule="wsd", branch=True, warmup_steps=10)
    assert TrainJobs(validate_config(raw)).packs == []


def test_the_pack_runs_each_cell_with_the_command_it_has_alone():
    jobs = TrainJobs(load_config(REPO / "config" / "sine.yaml"))
    pack = jobs.packs[0]
    words = shlex.split(jobs.pack_command(pack, "seed2", threads=1))
    assert words[:5] == ["python", "-m", "workflow_scripts.train.pack", "--trainer",
                         "workflow_scripts.train.samples_cell"]
    exp = jobs.config["experiments"][pack.experiment]
    for i, cell in enumerate(jobs.pack_cells(pack, "seed2")):
        log, benchmark, command = words[5 + 6 * i + 1], words[5 + 6 * i + 3], words[5 + 6 * i + 5]
        alone = f"{jobs.flags(cell.key)} " + job_flags(
            exp, 1, 0, {}, {"metrics": run_file(cell, "metrics.json"), "curve": run_file(cell, "curve.csv")})
        assert command == alone
        assert log == f"results/{cell.experiment}/logs/train/{cell.model}/{cell.data}/seed2.log"
        assert benchmark == f"results/{cell.experiment}/benchmarks/train/{cell.model}/{cell.data}/seed2.tsv"
        parsed = parse_flags(SamplesConfig, shlex.split(command), "")
        assert (parsed.seed, parsed.width) == (2, cell.width)
    # Rule train_cell's files, the seed (and a sweep's setting) the one wildcard.
    assert pack.run_files("metrics.json")[0] == f"results/{pack.experiment}/runs/mlp-L2-w2/D2048/{{seed}}/metrics.json"
    assert jobs.pack_resources(pack, "seed0", 1)["runtime"] == sum(
        jobs.resources(key, 1)["runtime"] for key in pack.keys("seed0"))
