"""Which GPU a job trains on, when several jobs share one machine's GPUs.

`snakemake --cores 16 --resources gpu=4` runs at most four GPU cells at once,
but does not say which device each gets: left alone, every job would train on
``cuda:0``. So each GPU job claims its devices itself, at start and before
torch initialises CUDA: it takes an exclusive, non-blocking ``fcntl.flock`` on
one lock file per device, keeps the file open for the life of the process and
sets ``CUDA_VISIBLE_DEVICES`` to what it holds. The kernel releases the locks
when the process ends, however it ends (``kill -9`` included), so no claim
outlives its job and no clean-up is needed.

The devices to share are those in ``CUDA_VISIBLE_DEVICES`` when a scheduler
or the user set it (SLURM sets it to a job's allocation: a job then picks among
its own GPUs only), else ``torch.cuda.device_count()`` of them (through NVML,
which does not initialise CUDA), or ``GPU_SLOTS_COUNT`` (for tests and
machines without NVML). Lock files live in ``GPU_SLOTS_DIR``, by default one
folder per user and machine (per SLURM job inside one), so two studies started
by one user on one workstation do not share a GPU either.

A job that finds every device taken waits for one (polling every second),
since it is typically another study's job on the same machine that finishes
soon; after ``GPU_SLOTS_WAIT_S`` seconds (default an hour) it fails with one
line. A job asking for more devices than exist fails at once.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import time
from pathlib import Path

POLL_S = 1.0
DEFAULT_WAIT_S = 3600.0

# Open lock files of this process's claims; kept referenced so they stay open (and locked).
_held: list[int] = []


class NoFreeGPU(RuntimeError):
    pass


def visible_devices(env: dict | None = None) -> list[str] | None:
    """The devices a scheduler or the user made visible, or None where nobody chose."""
    env = os.environ if env is None else env
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    # "" and "-1" hide every device; CUDA ignores what follows an invalid entry.
    devices = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def local_devices(env: dict | None = None) -> list[str]:
    """Device names this job may choose from (CUDA ordinals or UUIDs)."""
    env = os.environ if env is None else env
    visible = visible_devices(env)
    if visible is not None:
        return visible
    if env.get("GPU_SLOTS_COUNT"):
        count = int(env["GPU_SLOTS_COUNT"])
    else:
        # torch counts through NVML, leaving CUDA uninitialised; without NVML (rare) it would
        # initialise CUDA here, after which CUDA_VISIBLE_DEVICES is ignored: set GPU_SLOTS_COUNT there.
        import torch

        count = torch.cuda.device_count()
    return [str(i) for i in range(count)]


def lock_dir(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("GPU_SLOTS_DIR"):
        return Path(env["GPU_SLOTS_DIR"])
    job = f"-job{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else ""
    return Path(tempfile.gettempdir()) / f"gpu-slots-{os.getuid()}{job}"


def try_claim(devices: list[str], n: int, folder: Path) -> list[str] | None:
    """Lock ``n`` of ``devices`` at once, or none (releasing any partial claim)."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[tuple[str, int]] = []
    for device in devices:
        fd = os.open(folder / f"gpu-{device}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        taken.append((device, fd))
        if len(taken) == n:
            _held.extend(fd for _, fd in taken)
            return [device for device, _ in taken]
    for _, fd in taken:
        os.close(fd)  # closing the last descriptor releases its lock
    return None


def claim(n: int, env: dict | None = None, wait_s: float | None = None) -> list[str]:
    """Claim ``n`` free GPUs for this process and make only them visible to CUDA.

    Returns the devices claimed; none on a machine without GPUs (the job then
    trains where ``--device`` sends it). Call before anything initialises CUDA.
    """
    if n <= 0:
        return []
    env = os.environ if env is None else env
    devices = local_devices(env)
    if not devices:
        return []
    if n > len(devices):
        raise NoFreeGPU(f"asked for {n} GPUs, but this machine shows {len(devices)}: {','.join(devices)}")
    folder = lock_dir(env)
    wait_s = float(env.get("GPU_SLOTS_WAIT_S", DEFAULT_WAIT_S)) if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    waiting = False
    while (claimed := try_claim(devices, n, folder)) is None:
        if time.monotonic() >= deadline:
            raise NoFreeGPU(f"no {n} free GPUs of {len(devices)} after {wait_s:.0f} s: other jobs hold "
                            f"the locks in {folder}")
        if not waiting:
            print(f"waiting for {n} free GPUs of {len(devices)} (locks in {folder})", file=sys.stderr)
            waiting = True
        time.sleep(POLL_S)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
    return claimed


def release() -> None:
    """Give back every claim of this process (the end of the process does the same)."""
    while _held:
        os.close(_held.pop())


def claim_or_exit(count: int) -> None:
    """Claim ``count`` GPUs (a cell's ``--gpus``, or torchrun's processes) before anything initialises
    CUDA; held until the process ends. None free ends the job with a one-line error."""
    try:
        claim(count)
    except NoFreeGPU as error:
        sys.exit(f"error: {error}")
