"""WSD branching: one stable phase per (model, seed) saves the state where each cell's cooldown
starts; each cell trains only its cooldown from there and ends bitwise equal to a cell trained alone."""

import json
import subprocess
import sys
from dataclasses import asdict, replace

import pandas as pd
import pytest
import torch

from tests.helpers import planned_cells, planned_jobs, small_cell, write_config
from workflow_scripts.train.checkpoint import Checkpointer
from workflow_scripts.plan.config import validate_config
from workflow_scripts.plan.flags import train_arguments
from workflow_scripts.plan.grid import expand_grid
from workflow_scripts.train.cell_config import TrainConfig
from workflow_scripts.train.token_cell import train

SIZES = [4096, 8192, 20480]
# Dropout on, so the restored RNG state matters; the largest budget is the stable phase's.
WSD = dict(schedule="wsd", warmup_steps=5, cooldown_frac=0.3, dropout=0.1, eval_points=6, device="cpu")
NUMBERS = ("val_loss", "val_loss_best", "train_loss", "steps", "D", "C", "C_6ND", "N")


def wsd_cell(root, **overrides):
    return small_cell(root, **(WSD | overrides))


@pytest.fixture(scope="module")
def alone(token_files):
    """Each budget's cell trained from scratch with WSD."""
    return {d: train(wsd_cell(token_files, tokens=d)) for d in SIZES}


@pytest.fixture(scope="module")
def branches(token_files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("branches")
    stable = wsd_cell(token_files, tokens=max(SIZES), branch_tokens=",".join(map(str, SIZES)),
                      branch_dir=str(folder))
    summary, curve = train(stable, Checkpointer(folder / "stable.pt", asdict(stable)))
    return folder, summary


def test_branched_cells_equal_cells_trained_alone_bitwise(token_files, alone, branches, tmp_path):
    folder, summary = branches
    # Cooldowns of 30% of 16, 32 and 80 steps start at 11, 22 and 56; the stable phase stops at 56.
    assert summary == {"branches": {"4096.pt": 11, "8192.pt": 22, "20480.pt": 56}, "steps": 56}
    for tokens in SIZES:
        cell = wsd_cell(token_files, tokens=tokens, branch_from=str(folder / f"{tokens}.pt"))
        metrics, curve = train(cell, Checkpointer(tmp_path / f"{tokens}.pt", asdict(cell)))
        reference, reference_curve = alone[tokens]
        assert {k: metrics[k] for k in NUMBERS} == {k: reference[k] for k in NUMBERS}
        assert pd.DataFrame(curve).equals(pd.DataFrame(reference_curve))  # NaN-aware, exact, rows before the branch too
        inherited = summary["branches"][f"{tokens}.pt"]
        assert (metrics["steps_inherited"], metrics["steps_trained"]) == (inherited, metrics["steps"] - inherited)
        assert metrics["C"] == reference["C"]  # compute counts the whole D, inherited prefix included


def test_branch_of_other_flags_is_not_used(token_files, alone, branches, tmp_path, capsys):
    folder, _ = branches
    other = wsd_cell(token_files, tokens=4096, lr=0.01, branch_from=str(folder / "4096.pt"))
    metrics, _ = train(other, Checkpointer(tmp_path / "own.pt", asdict(other)))
    assert "was written with other flags (lr: 0.003 → 0.01); starting fresh" in capsys.readouterr().err
    assert metrics["steps_inherited"] == 0
    assert metrics["val_loss"] == train(replace(other, branch_from=""))[0]["val_loss"]


def test_stable_phase_refuses_an_inconsistent_plan(token_files, tmp_path):
    with pytest.raises(ValueError, match="--branch-tokens 4096,8192: expected the largest to be --tokens 20480"):
        train(wsd_cell(token_files, tokens=20480, branch_tokens="4096,8192", branch_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="a stable phase needs --schedule wsd, --warmup-steps > 0 and --epochs 1"):
        train(wsd_cell(token_files, tokens=8192, warmup_steps=0, branch_tokens="4096,8192", branch_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="branch checkpoint .*missing.pt does not exist: run the stable phase"):
        train(wsd_cell(token_files, branch_from=str(tmp_path / "missing.pt")))


def test_stable_phase_and_cooldown_from_the_command_line(token_files, alone, tmp_path):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in asdict(wsd_cell(token_files, tokens=8192)).items()
             if k in {"train_tokens", "val_tokens", "n_layer", "d_model", "n_head", "context", "batch_size",
                      "eval_tokens", "eval_points", "seed", "tokens", *WSD}]
    python = [sys.executable, "-m", "workflow_scripts.train.token_cell", *flags]
    folder = tmp_path / "branches"
    stable = subprocess.run([*python, "--branch-tokens", "4096,8192", "--branch-dir", str(folder)],
                            capture_output=True, text=True, timeout=120)
    assert stable.returncode == 0, stable.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["4096.pt", "8192.pt"]  # its own checkpoint is gone
    assert torch.load(folder / "4096.pt", weights_only=True)["progress"]["step"] == 11
    cell = subprocess.run([*python, "--tokens", "4096", "--branch-from", str(folder / "4096.pt"),
                           "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv")],
                          capture_output=True, text=True, timeout=120)
    assert cell.returncode == 0, cell.stderr
    assert f"starting from branch checkpoint {folder / '4096.pt'} at step 11" in cell.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["val_loss"] == alone[4096][0]["val_loss"] and metrics["steps_trained"] == 5


def wsd_study(tiny_config, **training):
    exp = tiny_config["experiments"]["tiny"]
    exp["training"].update(schedule="wsd", warmup_steps=3, cooldown_frac=0.25, **training)
    return tiny_config


def test_dry_run_plans_one_stable_phase_per_model_and_seed(tiny_config, tmp_path, run_snakemake):
    config = write_config(tmp_path / "wsd.yaml", wsd_study(tiny_config))
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "1", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result.stdout, "stable_phase") == 3 and planned_jobs(result.stdout, "train_cell") == 6  # no packs
    folder = "results/tiny/branches/L1-d8-h2/seed0"
    assert "--branch-tokens 4096,16384 " in result.stdout and f"--branch-dir {folder} " in result.stdout
    assert f"--branch-from {folder}/4096.pt " in result.stdout and f"--branch-from {folder}/16384.pt " in result.stdout
    unbranched = write_config(tmp_path / "alone.yaml", wsd_study(tiny_config, branch=False))
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(unbranched))
    assert "stable_phase" not in result.stdout and len(planned_cells(result.stdout)) == 6


@pytest.mark.slow
def test_branched_study_end_to_end_equals_cells_trained_alone(tiny_config, tmp_path, run_snakemake):
    tiny_config["experiments"]["tiny"]["models"] = tiny_config["experiments"]["tiny"]["models"][:1]
    config = wsd_study(tiny_config, eval_points=3)
    path = write_config(tmp_path / "wsd.yaml", config)
    result = run_snakemake(tmp_path, "results/tiny/runs.csv", "--cores", "2", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "results" / "tiny" / "branches").exists()  # temp(): gone once the cells are done
    runs = pd.read_csv(tmp_path / "results" / "tiny" / "runs.csv")
    assert list(runs["steps_inherited"]) == [12, 48] and list(runs["steps_trained"]) == [4, 16]
    data = tmp_path / "results" / "data" / "synthetic" / "char"
    resolved = validate_config(config)
    for cell, row in zip(expand_grid(resolved), runs.itertuples()):
        arguments = train_arguments(resolved, cell)
        alone_metrics, _ = train(TrainConfig(**arguments, train_tokens=str(data / "train.bin"),
                                             val_tokens=str(data / "val.bin")))
        assert row.val_loss == alone_metrics["val_loss"] and row.D == alone_metrics["D"]
