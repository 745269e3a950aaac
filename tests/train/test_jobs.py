"""A training job's failures end in one line naming the path and the cause; nothing partial is left.

Real faults, not mocks: a file system that is full (a tmpfs of a few pages, filled),
one mounted read-only, a folder made immutable (EPERM even for root), a token file
changed in place, and SIGINT (Ctrl-C) mid-training. Mounting needs root; those tests
skip without it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import default_sigint
from workflow_scripts.jobs import describe
from workflow_scripts.io import atomic_write_text

CELL = ["--n-layer", "1", "--d-model", "8", "--n-head", "2", "--context", "16", "--batch-size", "4",
        "--eval-tokens", "256", "--tokens", "2048"]


def cell(token_files: Path, out: Path, *extra: str, **popen) -> list[str]:
    return [sys.executable, "-m", "workflow_scripts.train.token_cell", "--train-tokens", str(token_files / "train.bin"),
            "--val-tokens", str(token_files / "val.bin"), *CELL, "--metrics", str(out / "metrics.json"),
            "--curve", str(out / "curve.csv"), *extra]


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture
def mount(tmp_path):
    """mount(options) -> a fresh tmpfs folder; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def make(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Take every free byte of the file system under ``folder``."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass


def test_a_full_disk_ends_in_one_line_leaves_nothing_partial_and_the_rerun_resumes(token_files, tmp_path, mount):
    out = mount("size=256k")
    fill(out)
    checkpoint = tmp_path / "cell.checkpoint.pt"  # on a disk with room: the cell trains, then its outputs fail
    failed = subprocess.run(cell(token_files, out, "--checkpoint", str(checkpoint)), capture_output=True, text=True)
    assert failed.returncode == 1
    assert last_line(failed.stderr) == f"error: {out / 'curve.csv'}: no space left on device"
    assert "Traceback" in failed.stderr  # the log keeps it for a developer, above the last line
    assert sorted(p.name for p in out.iterdir()) == ["filler"] and checkpoint.exists()
    (out / "filler").unlink()
    rerun = subprocess.run(cell(token_files, out, "--checkpoint", str(checkpoint)), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from checkpoint" in rerun.stderr and not checkpoint.exists()
    alone = subprocess.run(cell(token_files, tmp_path), capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr
    assert (out / "curve.csv").read_text() == (tmp_path / "curve.csv").read_text()


def test_a_read_only_file_system_ends_in_one_line(token_files, tmp_path, mount):
    out = mount("ro,size=64k")
    failed = subprocess.run(cell(token_files, out), capture_output=True, text=True)
    assert failed.returncode == 1
    assert last_line(failed.stderr) == f"error: {out / 'metrics.checkpoint.pt'}: read-only file system"


def test_an_unwritable_folder_ends_in_one_line_naming_the_output(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(PermissionError) as error:
            atomic_write_text(folder / "metrics.json", "{}")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert describe(error.value) == f"error: {folder / 'metrics.json'}: permission denied"
    assert list(folder.iterdir()) == []


def test_a_token_file_corrupted_in_place_stops_the_cell_before_training(token_files, tmp_path):
    corrupt = tmp_path / "tokens"
    corrupt.mkdir()
    for name in ("train.json", "val.bin", "val.json"):
        (corrupt / name).write_bytes((token_files / name).read_bytes())
    ids = np.fromfile(token_files / "train.bin", dtype="<u2")
    np.random.default_rng(0).permutation(ids).tofile(corrupt / "train.bin")  # same size, shuffled ids
    failed = subprocess.run(cell(corrupt, tmp_path), capture_output=True, text=True)
    assert failed.returncode != 0
    assert len(failed.stderr.strip().splitlines()) == 1
    assert str(corrupt / "train.bin") in failed.stderr and "changed after tokenization" in failed.stderr
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "metrics.checkpoint.pt").exists()


def test_ctrl_c_mid_training_ends_in_one_line_and_keeps_the_checkpoint(token_files, tmp_path):
    # Thousands of steps: still training when its first checkpoint (at an early evaluation point) appears.
    long = cell(token_files, tmp_path, "--epochs", "60", "--tokens", "28000", "--eval-points", "40")
    process = subprocess.Popen(long, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 300
    while not (tmp_path / "metrics.checkpoint.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130, stderr
    assert last_line(stderr).startswith("error: interrupted (SIGINT")
    assert not (tmp_path / "metrics.json").exists() and (tmp_path / "metrics.checkpoint.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_ctrl_c_as_the_temporary_file_is_created_leaves_no_file_behind(tmp_path, monkeypatch):
    # The window the test above can hit under load: SIGINT right after mkstemp created the file.
    import tempfile

    create = tempfile.mkstemp

    def create_then_interrupt(*args, **kwargs):
        made = create(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return made

    monkeypatch.setattr(tempfile, "mkstemp", create_then_interrupt)
    # Python's own Ctrl-C handler, whatever this process inherited (a suite started in the
    # background has SIGINT ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write_text(tmp_path / "metrics.json", "{}")
        assert list(tmp_path.iterdir()) == []
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_describe_names_the_cause_behind_a_wrapped_error(tmp_path):
    # torch's writers turn a failed write into a RuntimeError raised during the OSError.
    try:
        try:
            open(tmp_path / "absent" / "x.pt", "rb")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    except RuntimeError as error:
        wrapped = error
    assert describe(wrapped) == f"error: {tmp_path / 'absent' / 'x.pt'}: no such file or directory"
    assert describe(KeyError("x")) == "error: KeyError: 'x'"
    assert describe(ValueError("bad value\nmore")) == "error: bad value"


@pytest.mark.parametrize("module", ["token_cell", "samples_cell"])
def test_a_tiny_cell_imports_no_dynamo_and_exits_without_the_teardown(token_files, tmp_path, module):
    if module == "token_cell":
        argv = cell(token_files, tmp_path)[3:]
    else:
        from workflow_scripts.data.samples import prepare_samples
        from workflow_scripts.plan.config import validate_config

        config = validate_config({"datasets": {"sine": {"generator": "sine", "samples": {"train": 64, "val": 32,
                                                                                         "test": 32}}},
                                  "experiments": {"e": {"dataset": "sine", "model": {"family": "mlp"},
                                                        "models": [{"n_layer": 1, "width": 2}], "data_sizes": [64],
                                                        "training": {"batch_size": 0}}}})
        prepare_samples(config["datasets"]["sine"], tmp_path / "samples")
        argv = ["--data", str(tmp_path / "samples"), "--family", "mlp", "--n-layer", "1", "--width", "2",
                "--samples", "64", "--epochs", "5", "--batch-size", "0", "--metrics", str(tmp_path / "metrics.json"),
                "--curve", str(tmp_path / "curve.csv")]
    # An exit handler runs in the interpreter's teardown, which a finished job skips.
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('teardown ran', flush=True))\n"
            f"sys.argv = ['{module}', *{argv!r}]\n"
            f"runpy.run_module('workflow_scripts.train.{module}', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "metrics.json").exists() and "status=ok" in done.stdout
    assert "teardown ran" not in done.stdout
    assert "torch._dynamo" not in done.stderr  # -X importtime lists every module imported


def test_a_failing_data_step_keeps_the_traceback_in_its_log_and_ends_in_one_line(tmp_path):
    # What a script: adapter runs (workflow_scripts.data.adapters), here on a dataset path that is a folder.
    code = ("import sys\n"
            "from workflow_scripts.jobs import log_to\n"
            "from workflow_scripts.data.sources import prepare_dataset\n"
            f"with log_to({str(tmp_path / 'step.log')!r}):\n"
            "    print('preparing')\n"
            f"    prepare_dataset({{'source': 'local', 'path': {str(tmp_path)!r}}}, {str(tmp_path / 'out')!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    expected = (f"error: dataset path {str(tmp_path)!r}: is a directory; expected a file or a glob of files "
                "(e.g. data/*.txt)")
    assert done.stderr.strip() == expected and done.stdout == ""
    log = (tmp_path / "step.log").read_text().strip().splitlines()
    assert log[0] == "preparing" and "Traceback (most recent call last):" in log and log[-1] == expected
    assert not (tmp_path / "out").exists()


def test_a_corrupt_token_meta_stops_the_cell_in_one_line_naming_it(token_files, tmp_path):
    corrupt = tmp_path / "tokens"
    corrupt.mkdir()
    for name in ("train.bin", "val.bin", "val.json"):
        (corrupt / name).write_bytes((token_files / name).read_bytes())
    (corrupt / "train.json").write_text((token_files / "train.json").read_text()[:100])  # truncated
    failed = subprocess.run(cell(corrupt, tmp_path), capture_output=True, text=True)
    assert failed.returncode != 0 and len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith(f"error: {corrupt / 'train.json'}: not valid JSON (")
    assert "the file is corrupt or truncated" in failed.stderr


def test_a_full_disk_under_torch_save_names_the_checkpoint_and_the_space_left(token_files, mount):
    # torch.save to a path raises a RuntimeError that hides the system's ENOSPC: the line says what is left.
    out = mount("size=256k")
    fill(out)
    failed = subprocess.run(cell(token_files, out), capture_output=True, text=True)
    assert failed.returncode == 1
    line = last_line(failed.stderr)
    assert line.startswith(f"error: {out / 'metrics.checkpoint.pt'}: RuntimeError: ")
    assert line.endswith(" bytes free on its file system)") and len(failed.stderr.strip().splitlines()) > 1
    assert sorted(p.name for p in out.iterdir()) == ["filler"]
