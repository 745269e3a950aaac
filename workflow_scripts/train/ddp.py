"""Data-parallel training of one cell over several processes (PyTorch DDP under torchrun).

A cell that asks for several GPUs runs as ``python -m workflow_scripts.train.ddp
--nproc-per-node G <training flags>``: this launcher claims the G GPUs
(``workflow_scripts.train.gpu_slots``; the locks stay held while it waits), then
starts ``torchrun --standalone`` with G copies of ``python -m
workflow_scripts.train.token_cell``, each seeing the claimed devices.
``workflow_scripts.plan.flags.launcher`` writes that command for a Snakemake ``shell:``.

Every rank builds the same model from the same seed and reads the same global
batch of each step, of which it trains on its contiguous share (the batch size
must divide by the ranks). DDP averages the gradients, so the update is the
single-process update of the whole batch up to float summation order: the
global batch, the data order, the schedule and the numbers stay those of a
one-process run. Only rank 0 writes checkpoints, metrics and the curve. The
ranks agree at every step on the training loss (its mean) and on whether a stop
signal arrived, so they break out of the loop together.

Resumption restores model, optimiser and progress exactly; the random-number
states saved are rank 0's, so with dropout a resumed data-parallel run is not
bitwise the uninterrupted one (without dropout nothing random is drawn while
training).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from workflow_scripts.plan.flags import TOKEN_TRAINER
from workflow_scripts.train import gpu_slots

# torch is imported inside the functions that need it (lazily, with its 1-3 s import): the
# launcher process (main) only claims GPUs and starts torchrun, and a one-process cell never
# touches torch.distributed.


def under_torchrun(env=None) -> bool:
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE", "1")) > 1


@dataclass
class World:
    """This process's place among the ranks; one rank (the default) is a plain single-process run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: object = "cpu"  # where the collectives' tensors live (CUDA under NCCL)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> tuple[int, int]:
        """Rank's contiguous share [lo, hi) of ``n`` items (sizes differ by at most one)."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def sum(self, value: float) -> float:
        if self.size == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def agree(self, loss: float, signum: int | None) -> tuple[float, int | None]:
        """The mean training loss over the ranks, and a stop signal if any rank received one."""
        if self.size == 1:
            return loss, signum
        import torch
        import torch.distributed as dist

        total = torch.tensor([loss], dtype=torch.float64, device=self.device)
        stop = torch.tensor([signum or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(total)
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        return float(total.item()) / self.size, int(stop.item()) or None

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()


def init(device_name: str, env=None) -> tuple[World, str]:
    """Join the process group when started by torchrun; returns the world and the device to train on.

    NCCL on CUDA, gloo on CPU. Each rank trains on ``cuda:LOCAL_RANK`` of the devices it sees.
    """
    env = os.environ if env is None else env
    if not under_torchrun(env):
        return World(), device_name
    import torch
    import torch.distributed as dist

    world = World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(world.local_rank)
        device_name = world.device = f"cuda:{world.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return world, device_name


def close() -> None:
    """Leave the process group, if this process joined one."""
    if under_torchrun():
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap(model, world: World, device):
    """The model to train with: DDP around ``model`` on several ranks, else ``model`` itself."""
    if world.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", TOKEN_TRAINER, *argv]


def main(argv: list[str] | None = None) -> None:
    """Claim the GPUs, then run torchrun with the training flags, forwarding stop signals."""
    parser = argparse.ArgumentParser(description=main.__doc__, allow_abbrev=False)  # the rest is train's
    parser.add_argument("--nproc-per-node", type=int, required=True, help="processes (GPUs) of the cell")
    args, rest = parser.parse_known_args(argv)
    if args.nproc_per_node < 1:
        sys.exit(f"error: --nproc-per-node {args.nproc_per_node}: expected a positive integer")
    gpu_slots.claim_or_exit(args.nproc_per_node)  # held by this process while torchrun runs
    child = subprocess.Popen(torchrun_command(args.nproc_per_node, rest))

    # torchrun turns SIGTERM into SIGTERM to every worker (which checkpoint and exit); it has no
    # handler for SIGUSR1 (SLURM's --signal), which would kill it outright: send SIGTERM instead.
    def forward(signum, frame):
        child.send_signal(signal.SIGTERM if signum == signal.SIGUSR1 else signum)

    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(signum, forward)
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
