"""Scheduler resources of training cells: estimates, floors, retries, and their way into the rules."""

import copy
import re

import pytest

from tests.helpers import REPO, TINY_CONFIG, write_config
from workflow_scripts.plan.config import validate_config
from workflow_scripts.plan.grid import Cell, expand_grid
from workflow_scripts.models.transformer import GPTConfig, count_parameters
from workflow_scripts.data import samples
from workflow_scripts.plan.resources import (
    GENERATOR_INPUTS,
    MEM_FLOOR_MB,
    RUNTIME_FLOOR_MIN,
    SAMPLE_INPUTS_BOUND,
    SMALL_CELL_FLOPS,
    SMALL_GROUP,
    parameter_bound,
    sample_inputs,
    train_flops,
    train_group,
    train_mem_mb,
    train_resources,
    train_runtime_min,
)


def cell(d_model=32, n_layer=2, n_head=2, tokens=65536) -> Cell:
    return Cell("e", f"L{n_layer}-d{d_model}-h{n_head}", f"D{tokens}", 0, n_layer, d_model, n_head, tokens)


def gpt2_small(tokens=10**9) -> Cell:
    return cell(d_model=768, n_layer=12, n_head=12, tokens=tokens)


@pytest.mark.parametrize("size", [(2, 32, 2, 64), (12, 768, 12, 1024), (1, 8, 2, 17)])
def test_parameter_bound_is_the_models_count(size):
    n_layer, d_model, n_head, vocab = size
    cfg = GPTConfig(vocab_size=vocab, context=64, n_layer=n_layer, d_model=d_model, n_head=n_head, d_ff=4 * d_model)
    assert parameter_bound(cell(d_model, n_layer, n_head), 4 * d_model, 64, vocab) == count_parameters(cfg)["N"]


def test_small_cells_get_the_floors_and_one_thread():
    config = validate_config(copy.deepcopy(TINY_CONFIG))
    for c in expand_grid(config):
        assert train_resources(config, c) == {
            "threads": 1, "mem_mb": MEM_FLOOR_MB, "runtime": RUNTIME_FLOOR_MIN, "gpu": 0, "gpu_model": ""}


def test_memory_grows_with_size_batch_vocabulary_and_attempt():
    base = train_mem_mb(gpt2_small(), 3072, 1024, 50257, 8)
    # GPT-2 small: 2 GB of weights and AdamW state, 5 GB of activations and 5 GB of
    # training logits (the evaluation's are capped at EVAL_LOGITS floats), with 1.5x headroom.
    assert 1.5 * 10_000 < base < 1.5 * 14_000
    assert train_mem_mb(gpt2_small(), 3072, 1024, 50257, 16) > base
    assert train_mem_mb(gpt2_small(), 3072, 1024, 50257 * 2, 8) > base
    assert train_mem_mb(cell(d_model=1024, n_layer=24, n_head=16), 4096, 1024, 50257, 8) > base
    assert train_mem_mb(gpt2_small(), 3072, 1024, 50257, 8, attempt=3) == pytest.approx(3 * base, abs=200)
    assert base % 100 == 0


def test_runtime_from_flops_over_throughput():
    flops = train_flops(gpt2_small(tokens=10**8), 3072, 1024, 50257, epochs=1)
    assert flops == pytest.approx(6 * 124e6 * 1e8, rel=0.1)  # ≈ 6ND with embeddings (Kaplan et al. 2020)
    cpu = train_runtime_min(flops, threads=1, gpus=0)
    assert cpu > 24 * 60  # a day or more on one CPU thread
    assert train_runtime_min(flops, threads=4, gpus=0) == pytest.approx(cpu / 4, rel=0.01)
    assert RUNTIME_FLOOR_MIN <= train_runtime_min(flops, threads=1, gpus=1) < cpu / 100
    assert train_runtime_min(flops, threads=1, gpus=0, attempt=2) == pytest.approx(2 * cpu, abs=1)
    assert train_flops(gpt2_small(tokens=10**8), 3072, 1024, 50257, epochs=2) == 2 * flops


def test_only_gpu_cells_name_a_gpu_model():
    config = copy.deepcopy(TINY_CONFIG)
    config["experiments"]["tiny"]["resources"] = {"gpu": 2, "gpu_model": "a100"}
    config["experiments"]["cpu"] = {**TINY_CONFIG["experiments"]["tiny"], "resources": {"gpu_model": "a100"}}
    config = validate_config(config)
    for c in expand_grid(config):
        got = train_resources(config, c)
        expected = (2, "a100") if c.experiment == "tiny" else (0, "")
        assert (got["gpu"], got["gpu_model"]) == expected


@pytest.mark.slow
def test_rules_carry_the_estimates_and_profiles_override_them(tmp_path, run_snakemake):
    config = copy.deepcopy(TINY_CONFIG)
    config["experiments"]["tiny"]["resources"] = {"gpu": 1}
    path = write_config(tmp_path / "tiny.yaml", config)
    planned = run_snakemake(tmp_path, "-n", "--configfile", str(path))
    assert planned.returncode == 0, planned.stderr[-2000:]
    cells = re.findall(r"resources: .*", planned.stdout.split("rule train_cell:", 1)[1])
    assert "mem_mb=1000" in cells[0] and "runtime=10" in cells[0] and "gpu=1" in cells[0]
    overridden = run_snakemake(tmp_path, "-n", "--configfile", str(path),
                               "--set-resources", "train_cell:mem_mb=12345", "train_cell:runtime=77")
    assert overridden.returncode == 0, overridden.stderr[-2000:]
    train = overridden.stdout.split("rule train_cell:", 1)[1]
    assert "mem_mb=12345" in train and "runtime=77" in train


def study_with_large_and_gpu_cells() -> dict:
    """The tiny study with two seeds (12 small cells), plus one large cell and one small GPU cell."""
    tiny = TINY_CONFIG["experiments"]["tiny"]
    config = copy.deepcopy(TINY_CONFIG)
    config["experiments"]["tiny"]["seeds"] = [0, 1]
    # One job per cell, as grouped on SLURM: packs (tests/plan/test_plan_packs.py) would train them in 2.
    config["experiments"]["tiny"]["resources"] = {"pack": False}
    config["experiments"]["large"] = {**tiny, "models": [{"n_layer": 4, "d_model": 256, "n_head": 4}],
                                      "data_sizes": [32768], "training": {**tiny["training"], "epochs": 4}}
    config["experiments"]["gpu"] = {**tiny, "models": tiny["models"][:1], "data_sizes": [4096],
                                    "resources": {"gpu": 1}}
    return config


def test_only_small_cpu_cells_are_grouped():
    config = validate_config(study_with_large_and_gpu_cells())
    groups = {c: train_group(config, c) for c in expand_grid(config)}
    assert {c.experiment for c, g in groups.items() if g == SMALL_GROUP} == {"tiny"}
    assert sum(g == SMALL_GROUP for g in groups.values()) == 12
    large = next(c for c in groups if c.experiment == "large")
    assert groups[large] is None and train_flops(large, 1024, 32, 256, 4) > SMALL_CELL_FLOPS


@pytest.mark.slow
def test_slurm_profile_runs_small_cells_eight_to_a_job(tmp_path, run_snakemake):
    path = write_config(tmp_path / "study.yaml", study_with_large_and_gpu_cells())
    planned = run_snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(path))
    assert planned.returncode == 0, planned.stderr[-2000:]
    # top-level entries start with an unindented timestamp; a group's jobs are indented
    entries = re.split(r"^\[", planned.stdout, flags=re.M)
    small = [e for e in entries if re.match(r".*\] Group job train_small ", e)]
    assert sorted(g.count("rule train_cell:") for g in small) == [4, 8], [g[:200] for g in small]
    assert not any("experiment=large" in g or "experiment=gpu" in g for g in small)
    gpu_cell = planned.stdout.split("wildcards: experiment=gpu,", 1)[1]
    assert re.search(r"--threads 1 --gpus 1 ", gpu_cell)  # the cell's GPUs reach the job, which claims them


def test_generator_inputs_are_those_the_generators_make():
    # The plan (torch- and data-free) fixes each generator's inputs per sample for its FLOPs bound.
    counts = {"train": 4, "val": 2, "test": 2}
    for name, make in (("sine", samples.sine), ("mnist1d", samples.mnist1d)):
        arrays, _ = make({"source": "generator", "generator": name}, counts)
        assert arrays["train"][0][0].size == GENERATOR_INPUTS[name], name
    assert sample_inputs({"source": "generator", "generator": "sine"}) == 1
    assert sample_inputs({"source": "local", "generator": "hmm_language"}) == SAMPLE_INPUTS_BOUND
