"""Config validation and the grid of cells: one function for the DAG and the jobs.

``snakemake.utils.validate`` checks the config against ``config/schema.yaml``
and fills its defaults inside the workflow; ``load_config`` does the same
outside it (tests, notebooks), with the same schema. ``check_config`` adds
the checks a schema cannot express (names that refer to other entries,
divisibility, budgets against the corpus), and ``expand_grid`` turns a valid
config into the list of cells.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


class ConfigError(ValueError):
    """A config value is wrong; the message is one line naming key, value and expectation."""


@dataclass(frozen=True)
class Cell:
    """One training job of the grid."""

    experiment: str
    model: str  # wildcard, e.g. "L2-d32-h2"
    data: str  # wildcard, e.g. "D65536"
    seed: int
    n_layer: int
    d_model: int
    n_head: int
    tokens: int
    lr: float | None = None  # the size's own peak learning rate, if it has one
    compute_budget: float | None = None  # C of an IsoFLOP grid's cell, if the grid gives budgets

    @property
    def group(self) -> tuple[str, str, str]:  # cells that can share a WSD stable phase
        return (self.experiment, self.model, self.seed_name)

    @property
    def seed_name(self) -> str:  # wildcard, e.g. "seed0"
        return f"seed{self.seed}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.experiment, self.model, self.data, self.seed_name)


def model_name(size: dict) -> str:
    return f"L{size['n_layer']}-d{size['d_model']}-h{size['n_head']}"


def data_name(tokens: int) -> str:
    return f"D{tokens}"


def budget_name(budget: float) -> str:
    """``1e15`` → ``C1e15``, ``3.16e15`` → ``C3.16e15`` (six significant digits, no ``+``)."""
    mantissa, _, exponent = f"{float(budget):.5e}".partition("e")
    return f"C{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def nonembedding_parameters(n_layer: int, d_model: int, d_ff: int) -> int:
    """Kaplan's N without embeddings, as ``model.count_parameters`` counts it (no torch needed)."""
    return n_layer * (4 * d_model * d_model + 2 * d_model * d_ff + 2 * d_model) + d_model


def _with_defaults(validator_class):
    # jsonschema's documented recipe (also used by snakemake.utils.validate).
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        for name, subschema in properties.items():
            if "default" in subschema and isinstance(instance, dict):
                instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def describe_validation_error(error: ValidationError) -> str:
    """One line: where in the config, the bad value, and what the schema expected."""
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    value = json.dumps(error.instance, default=str)
    if len(value) > 80:
        value = value[:77] + "..."
    if error.validator == "additionalProperties":
        return f"config error: {where}: {error.message} (see config/schema.yaml for the allowed keys)"
    expected = {
        "enum": f"one of {error.validator_value}",
        "minimum": f">= {error.validator_value}",
        "maximum": f"<= {error.validator_value}",
        "exclusiveMinimum": f"> {error.validator_value}",
        "exclusiveMaximum": f"< {error.validator_value}",
        "type": f"type {error.validator_value}",
        "required": f"the keys {error.validator_value}",
    }.get(error.validator, error.message)
    return f"config error: {where} = {value}: expected {expected}"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def validate_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Schema check with defaults filled in, then ``check_config``; returns the resolved config."""
    config = copy.deepcopy(config)
    schema = load_schema(schema_path)
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(describe_validation_error(errors[0]))
    check_config(config)
    return config


def load_config(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return validate_config(yaml.safe_load(f) or {}, schema_path)


def check_config(config: dict) -> None:
    """Checks beyond the schema; raises ConfigError with one line for the first problem."""
    experiments = config.get("experiments", {})
    if not experiments:
        raise ConfigError("config error: experiments = {}: expected at least one experiment (the grid is empty)")
    for name, exp in experiments.items():
        where = f"experiments.{name}"
        for ref, table in (("dataset", "datasets"), ("tokenizer", "tokenizers")):
            if exp[ref] not in config.get(table, {}):
                known = sorted(config.get(table, {}))
                raise ConfigError(
                    f"config error: {where}.{ref} = {json.dumps(exp[ref])}: expected one of {known} (the {table} defined)"
                )
        for key in ("models", "seeds"):
            if not exp[key]:
                raise ConfigError(f"config error: {where}.{key} = []: expected at least one entry (the grid is empty)")
        for i, size in enumerate(exp["models"]):
            if size["d_model"] % size["n_head"]:
                raise ConfigError(
                    f"config error: {where}.models.{i}.n_head = {size['n_head']}: "
                    f"expected a divisor of d_model = {size['d_model']}"
                )
        _check_grid_axis(config, name, exp)
        _check_schedule(name, exp)
    for name, ds in config.get("datasets", {}).items():
        _check_dataset(name, ds)
    for name, tok in config.get("tokenizers", {}).items():
        _check_tokenizer(name, tok)


def _check_grid_axis(config: dict, name: str, exp: dict) -> None:
    """Exactly one of data_sizes and compute_budgets, each in range."""
    where, sizes, budgets = f"experiments.{name}", exp["data_sizes"], exp["compute_budgets"]
    if sizes and budgets:
        raise ConfigError(
            f"config error: {where}.compute_budgets = {json.dumps(budgets)}: expected either data_sizes or "
            f"compute_budgets, not both (data_sizes = {json.dumps(sizes)})"
        )
    if not sizes and not budgets:
        raise ConfigError(
            f"config error: {where}.data_sizes = []: expected at least one entry (the grid is empty), "
            "or compute_budgets"
        )
    smallest_batch = exp["training"]["batch_size"] * exp["model"]["context"]
    for tokens in sizes:
        if tokens * exp["training"]["epochs"] < smallest_batch:
            raise ConfigError(
                f"config error: {where}.data_sizes = {tokens}: expected at least one batch of "
                f"batch_size × context = {smallest_batch} tokens"
            )
    names = [budget_name(c) for c in budgets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"config error: {where}.compute_budgets = {json.dumps(budgets)}: expected distinct budgets "
            f"(equal to six significant digits: {', '.join(repeated)})"
        )
    kept = [c for size in exp["models"] for c in budgets if _budget_point(config, exp, size, c)[1] is None]
    if budgets and not kept:
        raise ConfigError(
            f"config error: {where}.compute_budgets = {json.dumps(budgets)}: expected at least one (budget, model) "
            f"whose D = C / (6N) lies between one batch ({smallest_batch} tokens) and the training split"
        )
    if sizes:
        _check_budget_fits_corpus(config, name, exp)


def _check_schedule(name: str, exp: dict) -> None:
    # A WSD cell branches from a stable phase shared by its (model, seed): the steps before its
    # cooldown must not depend on its length (a fixed warmup), and must lie in one pass over the data.
    training = exp["training"]
    if training["schedule"] != "wsd" or not training["branch"]:
        return
    if len(exp["data_sizes"]) + len(exp["compute_budgets"]) < 2:
        return
    where = f"experiments.{name}.training"
    if training["warmup_steps"] == 0:
        raise ConfigError(
            f"config error: {where}.warmup_steps = 0: expected > 0 with schedule wsd and branch true "
            "(cells share a stable phase only if their warmup does not depend on their length), or branch: false"
        )
    if training["epochs"] > 1:
        raise ConfigError(
            f"config error: {where}.epochs = {training['epochs']}: expected 1 with schedule wsd and branch true "
            "(cells share a stable phase only within one pass over the data), or branch: false"
        )


def _check_dataset(name: str, ds: dict) -> None:
    source, hf = ds.get("source", "generator"), ds.get("hf", {})
    # (key, value, problem) for each key the source needs, in the order they are reported.
    needed = {
        "local": [("path", ds.get("path", ""), "a file or glob for source local")],
        "url": [
            ("url", ds.get("url", ""), "a URL for source url"),
            ("sha256", ds.get("sha256", ""), "the file's SHA-256 (64 hex digits) for source url"),
        ],
        "hf": [
            ("hf.id", hf.get("id", ""), "a dataset id for source hf"),
            ("hf.revision", hf.get("revision", ""),
             "a commit hash or tag for source hf: hub data is pinned (for local files use source local)"),
        ],
    }.get(source, [])
    for key, value, expected in needed:
        if not value:
            raise ConfigError(
                f"config error: datasets.{name}.{key} = {json.dumps(value)}: expected {expected}"
            )
    if source == "hf" and ds.get("streaming") and not ds.get("max_chars"):
        raise ConfigError(
            f"config error: datasets.{name}.max_chars = {ds.get('max_chars', 0)}: "
            "expected > 0 with streaming (a streamed corpus is read until the cap)"
        )


def _check_tokenizer(name: str, tok: dict) -> None:
    if tok.get("kind") != "pretrained":
        return
    path = tok.get("path", "")
    if not path:
        raise ConfigError(
            f'config error: tokenizers.{name}.path = "": '
            "expected a tokenizer.json file or a hub id for kind pretrained"
        )
    if not path.endswith(".json") and not tok.get("revision"):
        raise ConfigError(
            f'config error: tokenizers.{name}.revision = "": '
            f"expected a commit hash or tag for the hub id {path!r}"
        )


def known_train_tokens(config: dict, exp: dict) -> int | None:
    """Training tokens of the experiment's split when the config alone fixes them, else None."""
    # Known before any job only for generated text read one character per token;
    # for other sources the training job checks the budget before it trains.
    ds = config["datasets"][exp["dataset"]]
    if ds["source"] != "generator" or config["tokenizers"][exp["tokenizer"]]["kind"] != "char":
        return None
    return ds["symbols"]["train"]


def _check_budget_fits_corpus(config: dict, name: str, exp: dict) -> None:
    available = known_train_tokens(config, exp)
    largest = max(exp["data_sizes"])
    if available is not None and largest + 1 > available:
        raise ConfigError(
            f"config error: experiments.{name}.data_sizes = {largest}: exceeds the {available} training "
            f"symbols of datasets.{exp['dataset']} by {largest + 1 - available}"
        )


def _budget_point(config: dict, exp: dict, size: dict, budget: float) -> tuple[int, str | None]:
    """A model size's unique tokens at compute budget C, and why the cell is left out (None: kept).

    D = C / (6 N) with N the non-embedding parameters (Kaplan et al. 2020; the same N as metrics'
    C_6ND): unlike the embeddings it is known before the tokenizer fixes the vocabulary. D is
    rounded to whole batches of every epoch; the cell reads D / epochs unique tokens.
    """
    training, context = exp["training"], exp["model"]["context"]
    batch = training["batch_size"] * context
    d_ff = int(round(exp["model"]["d_ff_ratio"] * size["d_model"]))
    n = nonembedding_parameters(size["n_layer"], size["d_model"], d_ff)
    wanted = budget / (6 * n)
    tokens = int(round(wanted / (training["epochs"] * batch))) * batch
    available = known_train_tokens(config, exp)
    if tokens < batch:
        return tokens, f"D = C / (6N) = {wanted:.0f} tokens (N = {n}) is less than one batch of {batch} tokens"
    if available is not None and tokens + 1 > available:
        return tokens, f"D = C / (6N) = {wanted:.0f} tokens (N = {n}) exceeds the {available} training tokens"
    return tokens, None


def grid_warnings(config: dict) -> list[str]:
    """One line per (budget, model) of an IsoFLOP grid left out of the grid, and why."""
    lines = []
    for name, exp in config["experiments"].items():
        for budget in exp["compute_budgets"]:
            for size in exp["models"]:
                problem = _budget_point(config, exp, size, budget)[1]
                if problem:
                    lines.append(f"warning: experiments.{name}: {model_name(size)} at {budget_name(budget)} "
                                 f"left out of the grid: {problem}")
    return lines


def expand_grid(config: dict) -> list[Cell]:
    """Every cell of every experiment, in a stable order (experiment, model, data, seed).

    An experiment gives data_sizes (cells named D<tokens>) or compute_budgets (cells named
    C<budget>, each model's D following from C; see ``_budget_point``, ``grid_warnings``).
    """
    cells = []
    for experiment, exp in config["experiments"].items():
        for size in exp["models"]:
            points = [(tokens, data_name(tokens), None) for tokens in exp["data_sizes"]]
            for budget in exp["compute_budgets"]:
                tokens, problem = _budget_point(config, exp, size, budget)
                if problem is None:
                    points.append((tokens, budget_name(budget), float(budget)))
            for tokens, data, budget in points:
                for seed in exp["seeds"]:
                    cells.append(Cell(experiment, model_name(size), data, seed, size["n_layer"], size["d_model"],
                                      size["n_head"], tokens, size.get("lr"), budget))
    return cells


def branch_groups(config: dict, cells: list[Cell]) -> dict[tuple[str, str, str], list[Cell]]:
    """Cells that train from a shared WSD stable phase, by (experiment, model, seed), smallest D first.

    Only groups of two or more cells of experiments with schedule wsd and branch true.
    """
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for cell in cells:
        training = config["experiments"][cell.experiment]["training"]
        if training["schedule"] == "wsd" and training["branch"]:
            groups.setdefault(cell.group, []).append(cell)
    return {k: sorted(v, key=lambda c: c.tokens) for k, v in groups.items() if len({c.tokens for c in v}) > 1}


def train_arguments(config: dict, cell: Cell) -> dict[str, Any]:
    """The training job's flags for one cell (its resolved hyperparameters)."""
    exp = config["experiments"][cell.experiment]
    model, training = exp["model"], exp["training"]
    return {
        "experiment": cell.experiment,
        "model_name": cell.model,
        "data_name": cell.data,
        "n_layer": cell.n_layer,
        "d_model": cell.d_model,
        "n_head": cell.n_head,
        "d_ff": int(round(model["d_ff_ratio"] * cell.d_model)),
        "context": model["context"],
        "dropout": model["dropout"],
        "tokens": cell.tokens,
        "compute_budget": cell.compute_budget or 0.0,
        "seed": cell.seed,
        **{k: v for k, v in training.items() if k not in ("threads", "lr_rule", "lr_base_width", "branch")},
        "lr": size_learning_rate(training, cell.d_model, cell.lr),
        "threads": training["threads"],
    }


# Peak-rate multipliers by width, relative to the rate at lr_base_width. Adam's update size does
# not shrink with fan-in, so wider matrices need smaller rates: 1/sqrt(fan-in) is the common
# heuristic; muP (Yang et al. 2022, Tensor Programs V, table 3) scales hidden matrices by 1/fan-in.
LR_RULES = {
    "constant": lambda ratio: 1.0,
    "inverse_sqrt_fan_in": lambda ratio: ratio**0.5,
    "mup": lambda ratio: ratio,
}


def size_learning_rate(training: dict, d_model: int, own_lr: float | None = None) -> float:
    """Peak learning rate of a size of width ``d_model``: its own ``lr`` if it has one, else ``training.lr_rule``."""
    if own_lr is not None:
        return own_lr
    rule = training.get("lr_rule", "constant")
    if rule not in LR_RULES:
        raise ConfigError(f"config error: training.lr_rule = {json.dumps(rule)}: expected one of {sorted(LR_RULES)}")
    return training["lr"] * LR_RULES[rule](training.get("lr_base_width", 32) / d_model)


def as_flags(arguments: dict[str, Any]) -> str:
    """``{"n_layer": 2}`` → ``--n-layer 2`` (values are names and numbers, never spaces)."""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in arguments.items())
