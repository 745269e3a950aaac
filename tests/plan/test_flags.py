"""Each job's command from the planning layer: launcher, cell flags, job flags; and the jobs' values."""

import copy
import re

from tests.helpers import write_config
from workflow_scripts.plan.config import validate_config
from workflow_scripts.plan.flags import cell_flags, fit_flags, job_command, stable_phase_flags, train_arguments
from workflow_scripts.plan.jobs import TrainJobs
from workflow_scripts.plan.sizes import gpt_parameters, nonembedding_parameters

SINE = {"source": "generator", "generator": "sine", "samples": {"train": 512, "val": 64, "test": 64}}
MLP = {"dataset": "sine", "model": {"family": "mlp"}, "models": [{"n_layer": 1, "width": 4}],
       "data_sizes": [128], "training": {"threads": 3}, "resources": {"gpu": 2}}
FILES = {"train": "t.bin", "val": "v.bin", "test": "s.bin"}
OUTPUTS = {"metrics": "m.json", "curve": "c.csv"}


def wsd(tiny_config):
    tiny_config["experiments"]["tiny"]["training"].update(schedule="wsd", warmup_steps=3, threads=2)
    return validate_config(tiny_config)


def test_a_cells_flags_are_its_arguments_and_a_branched_cell_starts_from_its_stable_phase(tiny_config):
    jobs = TrainJobs(wsd(tiny_config))
    small, large = jobs.branches[("tiny", "L1-d8-h2", "seed0")]
    assert jobs.flags(small.key) == cell_flags(jobs.config, small, branched=True)
    assert jobs.flags(small.key).endswith(" --branch-from results/tiny/branches/L1-d8-h2/seed0/4096.pt")
    assert "--tokens 4096 " in jobs.flags(small.key) and "--threads" not in jobs.flags(small.key)
    stable = jobs.flags(("tiny", "L1-d8-h2", "seed0"))
    assert stable == stable_phase_flags(jobs.config, [small, large]) and stable.endswith(" --branch-tokens 4096,16384")
    assert "--tokens 16384 " in stable and jobs.resources(("tiny", "L1-d8-h2", "seed0"), 1) == jobs.resources(large.key, 1)
    assert jobs.group(("tiny", "L1-d8-h2", "seed0")) is None  # a stable phase runs alone
    assert "branches" in jobs.inputs(small.key) and "branches" not in jobs.inputs(("tiny", "L1-d8-h2", "seed0"))


def test_job_commands_of_token_cells_stable_phases_and_samples_cells(tiny_config):
    config = wsd(tiny_config)
    exp = config["experiments"]["tiny"]
    assert job_command(exp, 2, 0, FILES, OUTPUTS) == (
        "python -m workflow_scripts.train.token_cell",
        "--threads 2 --gpus 0 --train-tokens t.bin --val-tokens v.bin --test-tokens s.bin --metrics m.json --curve c.csv")
    assert job_command(exp, 6, 2, FILES, ["branches"], stable_phase=True) == (
        "python -m workflow_scripts.train.ddp --nproc-per-node 2",
        "--threads 3 --gpus 2 --train-tokens t.bin --val-tokens v.bin --branch-dir branches")
    samples = validate_config({"datasets": {"sine": SINE}, "experiments": {"mlp": copy.deepcopy(MLP)}})
    # A samples cell trains in one process, with all the job's threads, whatever its GPUs.
    assert job_command(samples["experiments"]["mlp"], 6, 2, {}, OUTPUTS) == (
        "python -m workflow_scripts.train.samples_cell",
        "--threads 6 --gpus 2 --data results/data/sine/samples --metrics m.json --curve c.csv")
    cell = TrainJobs(samples).cells[("mlp", "mlp-L1-w4", "D128", "seed0")]
    arguments = train_arguments(samples, cell)
    assert arguments["width"] == 4 and arguments["samples"] == 128 and "threads" not in arguments


def test_fit_flags_quote_law_names_and_say_every_setting():
    analysis = {"bootstrap": 10, "seed": 1, "holdout": 2, "laws": ["L(N)", "L(D)"], "irreducible": False,
                "approach1_points": "final", "curve_skip": 0.2, "level": 0.9, "quality": {"max_rms": 0.03}}
    judged = """--level 0.9 --quality '{"max_rms": 0.03}'"""
    assert fit_flags(analysis) == ("--bootstrap 10 --seed 1 --holdout 2 --laws 'L(N),L(D)' --no-irreducible "
                                   "--approach1-points final --curve-skip 0.2 " + judged)
    assert fit_flags({**analysis, "laws": None, "irreducible": True}) == (
        "--bootstrap 10 --seed 1 --holdout 2 --approach1-points final --curve-skip 0.2 " + judged)


def test_the_nonembedding_count_leaves_out_embeddings_and_the_untied_head():
    tied, untied = (gpt_parameters(2, 32, 128, 50, 64, tied) for tied in (True, False))
    assert tied["N_nonembedding"] == untied["N_nonembedding"] == nonembedding_parameters(2, 32, 128)
    assert untied["N"] - tied["N"] == untied["N_head"] == 50 * 32 and tied["N_head"] == 0


def test_experiments_with_different_threads_and_gpus_get_their_own(tiny_config, tmp_path, run_snakemake):
    tiny_config["datasets"]["sine"] = SINE
    tiny_config["experiments"]["mlp"] = MLP
    tiny_config["experiments"]["tiny"]["models"] = tiny_config["experiments"]["tiny"]["models"][:1]
    config = write_config(tmp_path / "mixed.yaml", tiny_config)
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "8", "--resources", "gpu=2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = set()
    for block in result.stdout.split("rule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule in ("train_cell", "train_samples_cell"):  # Snakemake prints no threads line for one thread
            threads = re.search(r"threads: (\d+)", block)
            jobs.add((rule, threads.group(1) if threads else "1", re.search(r"gpu=(\d+)", block).group(1)))
    # The GPU cell alone; the two small CPU token cells one pack (workflow_scripts.plan.packs), a thread each.
    assert sorted(jobs) == [("train_samples_cell", "6", "2")]
    commands = [line for line in result.stdout.splitlines() if line.startswith("Shell command: python -m")]
    assert sum("samples_cell" in c and "--threads 6 --gpus 2 " in c for c in commands) == 1
    packs = [c for c in commands if "workflow_scripts.train.pack --trainer workflow_scripts.train.token_cell" in c]
    assert len(packs) == 1 and packs[0].count("--threads 1 --gpus 0 ") == 2, packs
