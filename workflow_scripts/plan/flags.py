"""The command of each job, assembled in one place: its launcher, its flags and its files.

A training job's command is ``<launcher> <cell flags> --threads T --gpus G <file flags>``:

- the launcher (``launcher``) is the trainer's module, or for a token cell on several GPUs the
  data-parallel wrapper ``workflow_scripts.train.ddp``, which starts torchrun;
- the cell flags (``cell_flags``, ``stable_phase_flags``) are the cell's resolved
  hyperparameters, a function of the config alone: Snakemake records them, and a change
  re-runs the cell;
- threads, GPUs and files (``job_command``) come from the job Snakemake scheduled (its threads
  may be scaled down to the cores given; a profile may change its GPUs).

``fit_flags`` is the fit job's flags from its experiment's analysis block. Every value
comes from a config validated against ``config/schema.yaml``, whose defaults are the only
ones: nothing here falls back to a default of its own.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, NamedTuple

from workflow_scripts.plan.grid import Cell, trains_on_samples
from workflow_scripts.plan.inputs import branch_checkpoint, branch_folder, samples_folder, token_files
from workflow_scripts.plan.sizes import mlp_width, size_learning_rate
from workflow_scripts.plan.sweep import cell_training

TOKEN_TRAINER = "workflow_scripts.train.token_cell"
SAMPLES_TRAINER = "workflow_scripts.train.samples_cell"
DATA_PARALLEL = "workflow_scripts.train.ddp"
PACK_TRAINER = "workflow_scripts.train.pack"

# Training keys that are not flags of the token trainer: the job's threads, what the plan
# itself resolves (the rate rule, branching), and compile (placed after the model's flags).
_NOT_TOKEN_FLAGS = ("threads", "lr_rule", "lr_base_width", "branch", "compile", "sweep")
# ... nor of the samples trainer, which has no evaluation sample, does not compile and does not
# measure the noise scale.
_NOT_SAMPLES_FLAGS = (*_NOT_TOKEN_FLAGS, "eval_tokens", "noise_scale")


def trainer(on_samples: bool) -> str:
    """The module that trains a cell in one process: a samples cell's or a token cell's."""
    return SAMPLES_TRAINER if on_samples else TOKEN_TRAINER


def launcher(gpus: int, on_samples: bool = False) -> str:
    """The command that starts a cell's training on ``gpus`` GPUs (its flags follow).

    Token cells on several GPUs train data-parallel; a samples cell trains in one process.
    """
    if gpus > 1 and not on_samples:
        return f"python -m {DATA_PARALLEL} --nproc-per-node {int(gpus)}"
    return f"python -m {trainer(on_samples)}"


def process_threads(threads: int, gpus: int, on_samples: bool = False) -> int:
    """Torch threads of each training process: the job's threads shared among its processes (one per GPU)."""
    return threads if on_samples else max(1, threads // max(1, gpus))


def job_threads(exp: dict) -> int:
    """CPU threads of a training job: training.threads for each of its processes (one per GPU under DDP)."""
    return exp["training"]["threads"] * max(1, exp["resources"]["gpu"])


def train_arguments(config: dict, cell: Cell) -> dict[str, Any]:
    """The trainer's flags for one cell (its resolved hyperparameters), as a dict."""
    exp = config["experiments"][cell.experiment]
    model = exp["model"]
    training = cell_training(exp["training"], cell.setting, size_learning_rate(exp["training"], cell.width, cell.lr))
    identity = {"experiment": cell.experiment, "model_name": cell.model, "data_name": cell.data}
    if cell.setting:
        identity["setting"] = cell.setting_name
    if cell.on_samples:
        return {
            **identity,
            "family": cell.family,
            "n_layer": cell.n_layer,
            "width": cell.width,
            "activation": model["activation"],
            "dropout": model["dropout"],
            "samples": cell.data_size,
            "seed": cell.seed,
            **{k: v for k, v in training.items() if k not in _NOT_SAMPLES_FLAGS},
        }
    return {
        **identity,
        "n_layer": cell.n_layer,
        "d_model": cell.width,
        "n_head": cell.n_head,
        "d_ff": mlp_width(model, cell.width),
        "context": model["context"],
        "dropout": model["dropout"],
        "tokens": cell.data_size,
        "compute_budget": cell.compute_budget or 0.0,
        "seed": cell.seed,
        **{k: v for k, v in training.items() if k not in _NOT_TOKEN_FLAGS},
        "tied_embeddings": model["tied_embeddings"],
        "compile": training["compile"],
    }


def transfer_arguments(exp: dict) -> dict[str, str]:
    """The transfer set of a transformer experiment that has one (evaluated at every point)."""
    if not exp["transfer"] or trains_on_samples(exp):
        return {}
    return {"transfer_tokens": token_files(exp)["transfer"], "transfer_name": exp["transfer"]}


def cell_flags(config: dict, cell: Cell, branched: bool = False) -> str:
    """A cell's flags; a ``branched`` WSD cell starts its cooldown from its stable phase's checkpoint."""
    arguments = train_arguments(config, cell)
    if branched:
        arguments["branch_from"] = branch_checkpoint(branch_folder(cell), cell.data_size)
    arguments.update(transfer_arguments(config["experiments"][cell.experiment]))
    return as_flags(arguments)


def stable_phase_flags(config: dict, cells: list[Cell]) -> str:
    """The stable phase of a branch group (smallest D first): its largest cell's run, branching at each D."""
    arguments = train_arguments(config, cells[-1])
    arguments["branch_tokens"] = ",".join(str(c.data_size) for c in cells)
    # The same transfer set as its cells: it is part of the branch checkpoints' identity.
    arguments.update(transfer_arguments(config["experiments"][cells[-1].experiment]))
    return as_flags(arguments)


class JobCommand(NamedTuple):
    """What a scheduled training job adds to its cell flags (rules/train.smk's shell)."""

    launcher: str
    job_flags: str


def job_command(exp: dict, threads: int, gpus: int, input: dict, output: dict,
                stable_phase: bool = False) -> JobCommand:
    """The job's launcher, and its flags: threads and GPUs, then the files it reads and writes.

    ``input`` and ``output`` are the job's named files (rules/train.smk).
    """
    return JobCommand(launcher(gpus, trains_on_samples(exp)),
                      job_flags(exp, threads, gpus, input, output, stable_phase))


def job_flags(exp: dict, threads: int, gpus: int, input: dict, output: dict,
              stable_phase: bool = False) -> str:
    """The flags a scheduled job adds to its cell flags: threads and GPUs, then its files."""
    on_samples = trains_on_samples(exp)
    flags = f"--threads {process_threads(threads, gpus, on_samples)} --gpus {gpus}"
    if on_samples:
        return f"{flags} --data {samples_folder(exp)} --metrics {output['metrics']} --curve {output['curve']}"
    flags += f" --train-tokens {input['train']} --val-tokens {input['val']}"
    if stable_phase:
        return f"{flags} --branch-dir {output[0]}"
    return f"{flags} --test-tokens {input['test']} --metrics {output['metrics']} --curve {output['curve']}"


def pack_command(exp: dict, commands: list[str], logs: list[str], benchmarks: list[str]) -> str:
    """A pack's job (workflow_scripts.plan.packs): its trainer, then each cell's log, benchmark file
    and command line (the flags it would be started with alone, after the trainer's module)."""
    parts = [f"python -m {PACK_TRAINER} --trainer {trainer(trains_on_samples(exp))}"]
    for command, log, benchmark in zip(commands, logs, benchmarks):
        parts.append(f"--log {log} --benchmark {benchmark} --cell {shlex.quote(command)}")
    return " ".join(parts)


def fit_flags(analysis: dict) -> str:
    """Flags of ``workflow_scripts.analysis.fit.experiment`` from an experiment's analysis block."""
    flags = ["--bootstrap", analysis["bootstrap"], "--seed", analysis["seed"],
             "--holdout", analysis["holdout"]]
    if analysis["laws"] is not None:
        flags += ["--laws", ",".join(analysis["laws"])]
    if not analysis["irreducible"]:
        flags.append("--no-irreducible")
    flags += ["--approach1-points", analysis["approach1_points"], "--curve-skip", analysis["curve_skip"]]
    flags += ["--level", analysis["level"], "--quality", json.dumps(analysis["quality"], sort_keys=True)]
    return " ".join(shlex.quote(str(flag)) for flag in flags)  # law names hold parentheses


def as_flags(arguments: dict[str, Any]) -> str:
    """``{"n_layer": 2}`` → ``--n-layer 2`` (values are names and numbers, never spaces)."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in arguments.items())
