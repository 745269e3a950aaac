"""A pack of cells in one process (workflow_scripts.train.pack) trains what each trains alone, and a
failed pack's rerun keeps its finished cells."""

import json
import shlex
import signal
import subprocess
import sys

import pandas as pd

from tests.helpers import REPO
from tests.train.test_train_samples import numbers, sine  # noqa: F401 (a fixture)
from workflow_scripts.train.checkpoint import Checkpointer
from workflow_scripts.train.pack import record_path
from workflow_scripts.train.samples_cell import main as train_alone


def flags(folder, out, width, **over):
    settings = {"data": folder, "family": "mlp", "n-layer": 1, "width": width, "activation": "tanh",
                "samples": 256, "epochs": 30, "batch-size": 64, "lr": 0.01, "seed": 3, "threads": 1,
                "metrics": out / "metrics.json", "curve": out / "curve.csv"} | over
    return " ".join(f"--{k} {v}" for k, v in settings.items())


def run_pack(tmp_path, cells):
    command = [sys.executable, "-m", "workflow_scripts.train.pack", "--trainer", "workflow_scripts.train.samples_cell"]
    for name, cell in cells:
        command += ["--log", str(tmp_path / f"{name}.log"), "--benchmark", str(tmp_path / f"{name}.tsv"),
                    "--cell", cell]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def read(out):
    return json.loads((out / "metrics.json").read_text()), (out / "curve.csv").read_text()


def test_packed_cells_train_the_numbers_they_train_alone(sine, tmp_path):
    cells = [(f"w{w}", flags(sine, tmp_path / f"pack{w}", w)) for w in (4, 8)]
    done = run_pack(tmp_path, cells)
    assert done.returncode == 0, done.stderr
    for w in (4, 8):
        train_alone(shlex.split(flags(sine, tmp_path / f"alone{w}", w)))
        (packed, packed_curve), (alone, alone_curve) = read(tmp_path / f"pack{w}"), read(tmp_path / f"alone{w}")
        assert numbers(packed) == numbers(alone) and packed_curve == alone_curve
        assert "status=ok" in (tmp_path / f"w{w}.log").read_text()
        line = pd.read_csv(tmp_path / f"w{w}.tsv", sep="\t")
        assert line["s"].iloc[0] > 0 and bool(line["packed"].iloc[0])
        assert not record_path(tmp_path / f"pack{w}" / "metrics.json").exists()  # gone with the pack done


def test_a_failed_pack_reruns_only_its_unfinished_cells(sine, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    failed = run_pack(tmp_path, [("good", flags(sine, good, 4)), ("bad", flags(sine, bad, 4, samples=10**6))])
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: --samples 1000000 exceeds the training split")
    assert "--samples 1000000 exceeds" in (tmp_path / "bad.log").read_text()
    first, first_curve = read(good)
    assert record_path(good / "metrics.json").exists()
    for name in ("metrics.json", "curve.csv"):  # what Snakemake does to a failed job's outputs
        (good / name).unlink()
    rerun = run_pack(tmp_path, [("good", flags(sine, good, 4)), ("bad", flags(sine, bad, 4))])
    assert rerun.returncode == 0, rerun.stderr
    assert "written back" in (tmp_path / "good.log").read_text()
    assert read(good) == (first, first_curve) and (bad / "metrics.json").exists()
    assert not record_path(good / "metrics.json").exists()
    # With other flags, the record is not used: the cell trains again.
    again = run_pack(tmp_path, [("good", flags(sine, good, 4, lr=0.02)), ("bad", flags(sine, bad, 4))])
    assert again.returncode == 0 and "written back" not in (tmp_path / "good.log").read_text()


def test_a_stop_signal_after_the_last_step_reaches_the_packs_handler(tmp_path):
    got = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        checkpointer = Checkpointer(tmp_path / "c.pt", {})
        checkpointer.install_signal_handlers()
        signal.raise_signal(signal.SIGTERM)  # taken by the cell's handler: a flag, no exit
        assert checkpointer.signum == signal.SIGTERM and got == []
        checkpointer.restore_signal_handlers()
        assert got == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
