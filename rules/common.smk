# Config validation, the grid of cells, wildcard constraints and input functions.
import os
import shlex
import sys

from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Jobs import the package from the workflow's folder, wherever they run; and
# without --sdm conda, `python` in a rule is the interpreter running Snakemake
# (e.g. .venv/bin/python), even when that environment is not activated.
sys.path.insert(0, workflow.basedir)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    ),
    PATH=os.pathsep.join((os.path.dirname(sys.executable), os.environ.get("PATH", ""))),
)

from workflow_scripts.plan.config import ConfigError, check_config, describe_validation_error
from workflow_scripts.plan.grid import (
    as_flags,
    branch_groups,
    expand_grid,
    grid_warnings,
    train_arguments,
)
from workflow_scripts.train.ddp import launcher
from workflow_scripts.data.download import download_name, download_path
from workflow_scripts.data.samples import local_input_files
from workflow_scripts.plan.resources import train_group, train_resources
from workflow_scripts.plan.figures import catalog as figure_catalog
from workflow_scripts.plan.figures import compare_outputs, figure_outputs

# Stop with one line naming the key, the value and what was expected.
try:
    validate(config, "../config/schema.yaml")
    check_config(config)
except WorkflowError as error:
    # validate() raises inside its `except ValidationError`, so that error is the context.
    cause = error.__context__
    if not isinstance(cause, ValidationError):
        raise
    sys.exit(describe_validation_error(cause))
except ConfigError as error:
    sys.exit(str(error))

CELLS = {cell.key: cell for cell in expand_grid(config)}
# (budget, size) pairs of IsoFLOP grids left out: one warning line each.
for line in grid_warnings(config):
    print(line, file=sys.stderr)
# WSD cells that start their cooldown from a stable phase shared by their (model, seed).
BRANCHES = branch_groups(config, list(CELLS.values()))


wildcard_constraints:
    experiment="[A-Za-z0-9_.-]+",
    dataset="[A-Za-z0-9_.-]+",
    tokenizer="[A-Za-z0-9_.-]+",
    split="train|val|test",
    model=r"L\d+-d\d+-h\d+|(mlp|cnn)-L\d+-w\d+",
    data=r"D\d+|C\d+(\.\d+)?e-?\d+",
    seed=r"seed\d+",
    download=r"[0-9a-f]{16}-[A-Za-z0-9._-]+",


def get_cell(wildcards):
    return CELLS[
        (wildcards.experiment, wildcards.model, wildcards.data, wildcards.seed)
    ]


def get_experiment(wildcards):
    return config["experiments"][wildcards.experiment]


def get_dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


# url datasets by download file name: two datasets with one URL share one download.
DOWNLOADS = {
    download_name(ds["url"], ds["sha256"]): {"url": ds["url"], "sha256": ds["sha256"]}
    for ds in config["datasets"].values()
    if ds["source"] == "url"
}


def get_dataset_download(wildcards):
    """The verified file a url dataset reads (made by rule download); nothing for other sources."""
    spec = get_dataset_spec(wildcards)
    if spec["source"] != "url":
        return []
    return str(download_path(spec["url"], spec["sha256"]))


def get_local_inputs(wildcards):
    """The files a local dataset reads, so that editing one re-runs its preparation."""
    return local_input_files(get_dataset_spec(wildcards))


def get_download(wildcards):
    return DOWNLOADS[wildcards.download]


def get_tokenizer_spec(wildcards):
    return config["tokenizers"][wildcards.tokenizer]


def get_branch_group(wildcards):
    return BRANCHES.get((wildcards.experiment, wildcards.model, wildcards.seed), [])


def get_stable_cell(wildcards):
    """The largest cell of a branch group: the stable phase is its run up to its cooldown."""
    return get_branch_group(wildcards)[-1]


def get_branch_folder(cell):
    return f"results/{cell.experiment}/branches/{cell.model}/{cell.seed_name}"


def get_cell_inputs(wildcards):
    """Token files, and for a branching WSD cell the stable phase's branch checkpoints."""
    inputs = get_cell_tokens(wildcards)
    if get_branch_group(wildcards):
        inputs["branches"] = get_branch_folder(get_cell(wildcards))
    return inputs


def get_stable_flags(wildcards):
    cells = get_branch_group(wildcards)
    arguments = train_arguments(config, cells[-1])
    arguments.pop("threads")
    arguments["branch_tokens"] = ",".join(str(c.tokens) for c in cells)
    # The same transfer set as its cells: it is part of the branch checkpoints' identity.
    arguments.update(get_transfer_arguments(wildcards))
    return as_flags(arguments)


def get_transfer_arguments(wildcards):
    transfer = get_experiment(wildcards)["transfer"]
    if not transfer or get_experiment(wildcards)["model"]["family"] != "transformer":
        return {}
    return {
        "transfer_tokens": get_cell_tokens(wildcards)["transfer"],
        "transfer_name": transfer,
    }


def get_cell_tokens(wildcards):
    """Token files of the cell's splits, and of its experiment's transfer set if it has one."""
    exp = get_experiment(wildcards)
    folder = f"results/data/{exp['dataset']}/{exp['tokenizer']}"
    files = {
        f"{split}{suffix}": f"{folder}/{split}.{ext}"
        for split in ("train", "val", "test")
        for suffix, ext in (("", "bin"), ("_meta", "json"))
    }
    if exp["transfer"]:
        files["transfer"] = f"{folder}/transfer/{exp['transfer']}.bin"
        files["transfer_meta"] = f"{folder}/transfer/{exp['transfer']}.json"
    return files


def get_cell_samples(wildcards):
    """The samples files of an mlp or cnn cell's dataset (rule prepare_samples)."""
    folder = f"results/data/{get_experiment(wildcards)['dataset']}/samples"
    return [
        f"{folder}/{split}.{ext}"
        for split in ("train", "val", "test")
        for ext in ("x.npy", "y.npy", "json")
    ]


def get_samples_folder(wildcards):
    return f"results/data/{get_experiment(wildcards)['dataset']}/samples"


def get_train_flags(wildcards):
    cell = get_cell(wildcards)
    arguments = train_arguments(config, cell)
    if get_branch_group(wildcards):
        arguments["branch_from"] = f"{get_branch_folder(cell)}/{cell.tokens}.pt"
    arguments.update(get_transfer_arguments(wildcards))
    arguments.pop(
        "threads"
    )  # taken from the rule's threads, which Snakemake may scale down
    return as_flags(arguments)


def get_train_threads(wildcards):
    """CPU threads of the job: training.threads for each of its processes (one per GPU under DDP)."""
    exp = get_experiment(wildcards)
    return exp["training"]["threads"] * max(1, exp["resources"]["gpu"])


def get_launcher(wildcards, resources):
    """``python -m workflow_scripts.train.token_cell``, or its data-parallel wrapper for cells with several GPUs."""
    return launcher(resources.gpu)


def get_process_threads(wildcards, threads, resources):
    """Torch threads of each training process: the job's threads shared among its processes."""
    return max(1, threads // max(1, resources.gpu))


# Scheduler resources of a cell, from its size and budget; memory and time grow
# with each retry. Profiles override them (set-resources: train_cell: ...).
def get_train_resource(name):
    def resource(wildcards, attempt):
        # A stable phase (no data wildcard) asks for what its largest cell would.
        cell = (
            get_cell(wildcards)
            if "data" in wildcards.keys()
            else get_stable_cell(wildcards)
        )
        return train_resources(config, cell, attempt)[name]

    return resource


# Small CPU cells share a group; `group-components` in a cluster profile batches them
# into one job each (local runs ignore groups).
def get_train_group(wildcards):
    return train_group(config, get_cell(wildcards))


def get_experiment_cell_files(name):
    """An input function: the file ``name`` of every cell of the experiment."""

    def files(wildcards):
        return [
            f"results/{c.experiment}/runs/{c.model}/{c.data}/{c.seed_name}/{name}"
            for c in CELLS.values()
            if c.experiment == wildcards.experiment
        ]

    return files


get_experiment_metrics = get_experiment_cell_files("metrics.json")
get_experiment_curves = get_experiment_cell_files("curve.csv")


def get_analysis(wildcards):
    return get_experiment(wildcards)["analysis"]


def get_fit_flags(wildcards):
    """Flags of workflow_scripts.analysis.fit.experiment from the experiment's analysis block."""
    analysis = get_analysis(wildcards)
    flags = ["--bootstrap", analysis["bootstrap"], "--seed", analysis["seed"]]
    flags += ["--holdout", analysis.get("holdout", 1)]
    if analysis.get("laws") is not None:
        flags += ["--laws", ",".join(analysis["laws"])]
    if not analysis.get("irreducible", True):
        flags.append("--no-irreducible")
    flags += ["--approach1-points", analysis.get("approach1_points", "auto")]
    flags += ["--curve-skip", analysis.get("curve_skip", 0.1)]
    return " ".join(shlex.quote(str(flag)) for flag in flags)


def get_compared(experiment):
    """The experiment and those its analysis compares it with, itself first."""
    others = config["experiments"][experiment]["analysis"].get("compare", [])
    unknown = [o for o in others if o not in config["experiments"] or o == experiment]
    if unknown:
        raise ValueError(
            f"experiments.{experiment}.analysis.compare names {', '.join(map(repr, unknown))}; "
            f"expected other experiments among {', '.join(config['experiments'])}"
        )
    return [experiment, *others]


def get_compare_files(name):
    """An input function: the file ``name`` of the experiment and of each it compares with."""

    def files(wildcards):
        return [f"results/{e}/{name}" for e in get_compared(wildcards.experiment)]

    return files


# Checked at parse time: a bad name stops the workflow before any job, in one line.
for _experiment in config["experiments"]:
    try:
        get_compared(_experiment)
    except ValueError as error:
        sys.exit(str(error))


def get_final_outputs():
    outputs = [
        f"results/{experiment}/{name}"
        for experiment in config["experiments"]
        for name in (
            "runs.csv",
            "curves.parquet",
            "cells_summary.csv",
            "fits.json",
            "fits.csv",
            "fits.tex",
        )
    ]
    # The figures that apply to each experiment, variants side by side, every law's verdict.
    outputs += figure_outputs(config) + compare_outputs(config) + ["results/summary.rst"]
    return outputs
