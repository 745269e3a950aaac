# Config validation, the grid of cells, wildcard constraints and input functions.
import os
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

from workflow_scripts.config import (
    ConfigError,
    as_flags,
    check_config,
    describe_validation_error,
    expand_grid,
    train_arguments,
)
from workflow_scripts.download import download_name, download_path
from workflow_scripts.resources import train_resources

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


wildcard_constraints:
    experiment="[A-Za-z0-9_.-]+",
    dataset="[A-Za-z0-9_.-]+",
    tokenizer="[A-Za-z0-9_.-]+",
    split="train|val|test",
    model=r"L\d+-d\d+-h\d+",
    data=r"D\d+",
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


def get_download(wildcards):
    return DOWNLOADS[wildcards.download]


def get_tokenizer_spec(wildcards):
    return config["tokenizers"][wildcards.tokenizer]


def get_cell_tokens(wildcards):
    exp = get_experiment(wildcards)
    folder = f"results/data/{exp['dataset']}/{exp['tokenizer']}"
    return {
        "train": f"{folder}/train.bin",
        "train_meta": f"{folder}/train.json",
        "val": f"{folder}/val.bin",
        "val_meta": f"{folder}/val.json",
    }


def get_train_flags(wildcards):
    arguments = train_arguments(config, get_cell(wildcards))
    arguments.pop(
        "threads"
    )  # taken from the rule's threads, which Snakemake may scale down
    return as_flags(arguments)


def get_train_threads(wildcards):
    return get_experiment(wildcards)["training"]["threads"]


# Scheduler resources of a cell, from its size and budget; memory and time grow
# with each retry. Profiles override them (set-resources: train_cell: ...).
def get_train_resource(name):
    def resource(wildcards, attempt):
        return train_resources(config, get_cell(wildcards), attempt)[name]

    return resource


def get_experiment_metrics(wildcards):
    return [
        f"results/{c.experiment}/runs/{c.model}/{c.data}/{c.seed_name}/metrics.json"
        for c in CELLS.values()
        if c.experiment == wildcards.experiment
    ]


def get_analysis(wildcards):
    return get_experiment(wildcards)["analysis"]


def get_final_outputs():
    return [
        f"results/{experiment}/{name}"
        for experiment in config["experiments"]
        for name in (
            "runs.csv",
            "fits.json",
            "figures/loss_vs_N.png",
            "figures/loss_vs_N.pdf",
            "figures/loss_vs_D.png",
            "figures/loss_vs_D.pdf",
        )
    ]
