"""GPU slots on a shared machine: concurrent jobs get distinct devices, tested without a GPU.

The claimants are real processes (``GPU_SLOTS_COUNT`` fakes the device count),
because the locks are the kernel's, per open file, and must hold between
processes and vanish with a killed one.
"""

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO
from workflow_scripts.train import gpu_slots

# Claims GPUs, prints what CUDA would see, then holds them until killed or stdin closes.
CLAIMANT = """
import os, sys
from workflow_scripts.train import gpu_slots
try:
    gpu_slots.claim(int(sys.argv[1]))
except gpu_slots.NoFreeGPU as error:
    sys.exit(f"error: {error}")
print(os.environ.get("CUDA_VISIBLE_DEVICES", "none"), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def slots_env(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(GPU_SLOTS_DIR=str(tmp_path / "locks"), GPU_SLOTS_COUNT="3", PYTHONPATH=str(REPO))
    for key in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"):
        monkeypatch.setenv(key, "")  # so that teardown restores them, whatever claim() sets
        monkeypatch.delenv(key)
    for key in ("GPU_SLOTS_DIR", "GPU_SLOTS_COUNT"):
        monkeypatch.setenv(key, env[key])
    yield env
    gpu_slots.release()


@pytest.fixture
def claimants(slots_env):
    started = []

    def start(n: int = 1, **env) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", CLAIMANT, str(n)], env={**slots_env, **env}, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.communicate()


def test_concurrent_jobs_get_distinct_devices_and_a_killed_one_frees_its_own(claimants):
    holders = [claimants() for _ in range(3)]
    seen = [h.stdout.readline().strip() for h in holders]
    assert sorted(seen) == ["0", "1", "2"]

    # None free: a job that will not wait fails with one line; one that waits gets the next freed device.
    full = claimants(GPU_SLOTS_WAIT_S="0")
    assert full.wait(timeout=30) == 1
    assert full.stderr.read().strip().splitlines() == [
        f"error: no 1 free GPUs of 3 after 0 s: other jobs hold the locks in {os.environ['GPU_SLOTS_DIR']}"]
    waiter = claimants(GPU_SLOTS_WAIT_S="60")
    time.sleep(0.5)
    assert waiter.poll() is None
    holders[1].send_signal(signal.SIGKILL)  # the kernel drops a dead process's locks: no stale claim
    start = time.perf_counter()
    assert waiter.stdout.readline().strip() == seen[1]
    assert time.perf_counter() - start < 5
    assert "waiting for 1 free GPUs of 3" in waiter.stderr.readline()


def test_a_multi_gpu_job_takes_all_or_nothing(slots_env):
    assert gpu_slots.try_claim(["0", "1", "2"], 1, gpu_slots.lock_dir()) == ["0"]
    assert gpu_slots.try_claim(["0", "1", "2"], 2, gpu_slots.lock_dir()) == ["1", "2"]
    gpu_slots.release()
    held = gpu_slots.try_claim(["0", "1", "2"], 2, gpu_slots.lock_dir())
    assert gpu_slots.try_claim(["0", "1", "2"], 2, gpu_slots.lock_dir()) is None  # only one left: none taken
    assert gpu_slots.try_claim(["0", "1", "2"], 1, gpu_slots.lock_dir()) == ["2"]
    assert held == ["0", "1"]
    with pytest.raises(gpu_slots.NoFreeGPU, match="asked for 4 GPUs, but this machine shows 3"):
        gpu_slots.claim(4)


def test_devices_set_by_a_scheduler_are_the_only_ones_shared(claimants):
    # SLURM (or the user) made GPUs 5 and 7 visible: jobs split those, never others.
    first, second = claimants(CUDA_VISIBLE_DEVICES="5,7"), claimants(CUDA_VISIBLE_DEVICES="5,7")
    assert {first.stdout.readline().strip(), second.stdout.readline().strip()} == {"5", "7"}
    # Hidden devices ("" or -1) and jobs that want none claim nothing.
    assert claimants(CUDA_VISIBLE_DEVICES="").stdout.readline().strip() == ""
    assert claimants(0).stdout.readline().strip() == "none"
    assert gpu_slots.visible_devices({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]
    assert gpu_slots.lock_dir({"SLURM_JOB_ID": "42"}).name.endswith("-job42")


@pytest.mark.parametrize("module, data_flag", [("token_cell", "--train-tokens"), ("samples_cell", "--data")])
def test_training_entry_points_claim_before_training(slots_env, monkeypatch, tmp_path, module, data_flag):
    main = importlib.import_module(f"workflow_scripts.train.{module}").main  # torch loads only for this test
    monkeypatch.setenv("GPU_SLOTS_COUNT", "1")
    monkeypatch.setenv("GPU_SLOTS_WAIT_S", "0")
    assert gpu_slots.claim(1) == ["0"]  # another job holds the only GPU
    # The missing data would fail later: the claim comes first and ends the job in one line.
    with pytest.raises(SystemExit, match="^error: no 1 free GPUs of 1 after 0 s"):
        main(["--gpus", "1", data_flag, str(tmp_path / "missing")])
