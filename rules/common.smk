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

from workflow_scripts.plan.config import (
    ConfigError,
    check_config,
    describe_validation_error,
)
from workflow_scripts.plan.flags import fit_flags, job_command, job_threads
from workflow_scripts.plan.grid import grid_warnings, model_name
from workflow_scripts.plan.inputs import (
    download_name,
    download_path,
    local_input_files,
    run_file,
)
from workflow_scripts.plan.jobs import TrainJobs
from workflow_scripts.plan import bracket
from workflow_scripts.plan.resources import gpu_request
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

# Every cell, its stable phase under WSD branching, and each job's values, computed once.
TRAIN_JOBS = TrainJobs(config)
# Sizes that bracketing rounds already on disk added (workflow_scripts.plan.bracket): a job
# that a cluster executor starts re-reads this file and must know those cells too.
for _name, _exp in config["experiments"].items():
    TRAIN_JOBS.add_sizes(
        _name, bracket.added_sizes(_exp, bracket.records_on_disk(_name, _exp))
    )
# (budget, size) pairs of IsoFLOP grids left out: one warning line each.
for line in grid_warnings(config):
    print(line, file=sys.stderr)


# Names validated by the same pattern (workflow_scripts.plan.names): no `.`, `..` or `/`, so none leaves results/.
from workflow_scripts.plan.names import NAME_PATTERN
from workflow_scripts.plan.sweep import SEED_PATTERN


wildcard_constraints:
    experiment=NAME_PATTERN,
    dataset=NAME_PATTERN,
    tokenizer=NAME_PATTERN,
    split="train|val|test",
    model=r"L\d+-d\d+-h\d+|(mlp|cnn)-L\d+-w\d+",
    data=r"D\d+|C\d+(\.\d+)?e-?\d+",
    seed=SEED_PATTERN,
    round=r"\d+",
    download=r"[0-9a-f]{16}-[A-Za-z0-9._-]+",


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


# The training rules (rules/train.smk) ask TRAIN_JOBS for each job's values, by its key.
def get_train_key(wildcards):
    """A cell's (experiment, model, data, seed), or a stable phase's (experiment, model, seed)."""
    if "data" in wildcards.keys():
        return (wildcards.experiment, wildcards.model, wildcards.data, wildcards.seed)
    return (wildcards.experiment, wildcards.model, wildcards.seed)


def get_train_inputs(wildcards):
    """Token files (and a branched cell's stable phase), or an mlp or cnn cell's samples files."""
    return TRAIN_JOBS.inputs(get_train_key(wildcards))


def get_train_flags(wildcards):
    """The cell's flags: a function of the config alone, so Snakemake re-runs a cell whose flags change."""
    return TRAIN_JOBS.flags(get_train_key(wildcards))


def get_train_job(wildcards, input, output, threads, resources):
    """The launcher, and the flags of the job as scheduled: threads, GPUs, files."""
    stable_phase = "data" not in wildcards.keys()
    return job_command(
        get_experiment(wildcards), threads, resources.gpu, input, output, stable_phase
    )


# Scheduler resources of a cell, from its size and budget; memory and time grow
# with each retry. Profiles override them (set-resources: train_cell: ...).
def get_train_resource(name):
    def resource(wildcards, attempt):
        return TRAIN_JOBS.resources(get_train_key(wildcards), attempt)[name]

    return resource


# Small CPU cells share a group; `group-components` in a cluster profile batches them
# into one job each (local runs ignore groups).
def get_train_group(wildcards):
    return TRAIN_JOBS.group(get_train_key(wildcards))


# A pack's rule (rules/train.smk) asks TRAIN_JOBS for its values by the pack and its seed.
def get_pack_flags(pack):
    return lambda wildcards: TRAIN_JOBS.pack_flags(pack, wildcards.seed)


def get_pack_command(pack):
    return lambda wildcards, threads: TRAIN_JOBS.pack_command(
        pack, wildcards.seed, threads
    )


def get_pack_resource(pack, name):
    return lambda wildcards, attempt: TRAIN_JOBS.pack_resources(
        pack, wildcards.seed, attempt
    )[name]


def per_experiment(value):
    """``value(exp)`` of the job's experiment: a plain value when every experiment agrees, since
    Snakemake evaluates a function once or more for every job (issue 16: the DAG's build time).
    """
    values = {name: value(exp) for name, exp in config["experiments"].items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return lambda wildcards: values[wildcards.experiment]


TRAIN_THREADS = per_experiment(job_threads)
TRAIN_GPU = per_experiment(lambda exp: gpu_request(exp)["gpu"])
TRAIN_GPU_MODEL = per_experiment(lambda exp: gpu_request(exp)["gpu_model"])


def get_bracket_records(experiment, rounds):
    """Records of the experiment's first ``rounds`` bracketing rounds, each a checkpoint's output
    (Snakemake runs it first), up to the first that extends nothing or adds no cell."""
    exp, records = config["experiments"][experiment], []
    for r in range(rounds):
        path = checkpoints.bracket.get(experiment=experiment, round=r).output[0]
        records.append(bracket.read_record(path))
        if not records[-1]["extend"]:
            break
        if not TRAIN_JOBS.round_adds_cells(experiment, exp, records):
            break
    return records


def get_experiment_cells(experiment, rounds=None):
    """The experiment's cells: those planned, and those its bracketing rounds (all, or the
    first ``rounds``) added."""
    exp = config["experiments"][experiment]
    if not bracket.enabled(exp):
        return TRAIN_JOBS.experiment_cells(experiment)
    records = get_bracket_records(
        experiment, exp["bracket"]["rounds"] if rounds is None else rounds
    )
    return TRAIN_JOBS.bracketed_cells(experiment, exp, records)


def get_experiment_cell_files(name):
    """An input function: the file ``name`` of every cell of the experiment."""

    def files(wildcards):
        return [run_file(c, name) for c in get_experiment_cells(wildcards.experiment)]

    return files


def get_bracket_round_metrics(wildcards):
    """Round r judges the cells planned and added by the rounds before it."""
    cells = get_experiment_cells(wildcards.experiment, int(wildcards.round))
    return [run_file(c, "metrics.json") for c in cells]


def get_bracket_files(wildcards):
    """The round records of a bracketing experiment (none otherwise), for its fits.json."""
    exp = get_experiment(wildcards)
    if not bracket.enabled(exp):
        return []
    records = get_bracket_records(wildcards.experiment, exp["bracket"]["rounds"])
    return [bracket.round_file(wildcards.experiment, r["round"]) for r in records]


def get_bracket_flags(wildcards):
    """The fit's --bracket-* flags: the rounds' limit and the model sizes they added."""
    exp = get_experiment(wildcards)
    if not bracket.enabled(exp):
        return ""
    records = get_bracket_records(wildcards.experiment, exp["bracket"]["rounds"])
    added = [model_name(size) for size in bracket.added_sizes(exp, records)]
    return f"--bracket-rounds {exp['bracket']['rounds']}" + "".join(
        f" --bracket-added {name}" for name in added
    )


get_experiment_metrics = get_experiment_cell_files("metrics.json")
get_experiment_curves = get_experiment_cell_files("curve.csv")


def get_analysis(wildcards):
    return get_experiment(wildcards)["analysis"]


def get_sweep_select(wildcards):
    """How aggregate marks a swept experiment's selected settings (training.sweep.select)."""
    return get_experiment(wildcards)["training"]["sweep"]["select"]


def get_fit_flags(wildcards):
    """Flags of workflow_scripts.analysis.fit.experiment from the experiment's analysis block."""
    return fit_flags(get_analysis(wildcards))


def get_compared(experiment):
    """The experiment and those its analysis compares it with, itself first."""
    others = config["experiments"][experiment]["analysis"]["compare"]
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
    outputs += (
        figure_outputs(config) + compare_outputs(config) + ["results/summary.rst"]
    )
    return outputs
