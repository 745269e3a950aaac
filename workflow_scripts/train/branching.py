"""WSD branching: the stable phase of a (model, seed) trains its largest cell up to that
cell's cooldown and saves, at each smaller budget's cooldown start, the state that budget's
cell resumes from (``--branch-from``), so it trains only its cooldown.

Every step before a cell's ``Schedule.branch_step`` has the rate of any longer cell with the
same warmup (``workflow_scripts.train.schedule``), and a smaller budget's windows are a prefix
of a larger one's, so the branched cell ends with the numbers of the cell trained alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from workflow_scripts.plan.inputs import branch_checkpoint
from workflow_scripts.train.cell_config import TrainConfig
from workflow_scripts.train.checkpoint import Checkpointer, Progress
from workflow_scripts.train.schedule import Schedule, eval_steps, plan_steps


@dataclass
class Track:
    """A cell whose learning curve the loop records: the cell trained, or (stable phase) a branch of it."""

    schedule: Schedule
    evals: set[int]
    curve: list[dict]
    recent: list[float]
    branch: Checkpointer | None = None  # stable phase: saves the branch where its cooldown starts
    noise: dict = field(default_factory=dict)  # its noise scale's state (workflow_scripts.train.noise_scale)

    @property
    def rows_until(self) -> int:  # a branch's rows from its cooldown on are the cell's own
        return self.schedule.steps if self.branch is None else self.schedule.branch_step - 1


def branch_tracks(cfg: TrainConfig, progress: Progress, available: int) -> list[Track]:
    """The stable phase's branches: every budget of ``--branch-tokens``, the largest being ``--tokens``."""
    budgets = sorted({int(t) for t in cfg.branch_tokens.split(",")})
    if budgets[-1] != cfg.tokens:
        raise ValueError(f"--branch-tokens {cfg.branch_tokens}: expected the largest to be --tokens {cfg.tokens}")
    if cfg.schedule != "wsd" or cfg.warmup_steps < 1 or cfg.epochs != 1:
        raise ValueError("a stable phase needs --schedule wsd, --warmup-steps > 0 and --epochs 1")
    tracks = []
    for tokens in budgets:
        cell = replace(cfg, tokens=tokens, branch_tokens="", branch_dir="")
        steps = plan_steps(cell, available)
        saved = progress.branches.setdefault(str(tokens), {"curve": [], "recent": []})
        branch = Checkpointer(branch_path(cfg.branch_dir, tokens), asdict(cell), every_s=0)
        tracks.append(Track(cell.schedule_for(steps), set(eval_steps(steps, cfg.eval_points)),
                            saved["curve"], saved["recent"], branch, saved.setdefault("noise", {})))
    return tracks


def branch_path(folder: str | Path, tokens: int) -> Path:
    return Path(branch_checkpoint(folder, tokens))
