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
        for key in ("models", "data_sizes", "seeds"):
            if not exp[key]:
                raise ConfigError(f"config error: {where}.{key} = []: expected at least one entry (the grid is empty)")
        for i, size in enumerate(exp["models"]):
            if size["d_model"] % size["n_head"]:
                raise ConfigError(
                    f"config error: {where}.models.{i}.n_head = {size['n_head']}: "
                    f"expected a divisor of d_model = {size['d_model']}"
                )
        smallest_batch = exp["training"]["batch_size"] * exp["model"]["context"]
        for tokens in exp["data_sizes"]:
            if tokens * exp["training"]["epochs"] < smallest_batch:
                raise ConfigError(
                    f"config error: {where}.data_sizes = {tokens}: expected at least one batch of "
                    f"batch_size × context = {smallest_batch} tokens"
                )
        _check_budget_fits_corpus(config, name, exp)
    for name, ds in config.get("datasets", {}).items():
        _check_dataset(name, ds)
    for name, tok in config.get("tokenizers", {}).items():
        _check_tokenizer(name, tok)


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


def _check_budget_fits_corpus(config: dict, name: str, exp: dict) -> None:
    # Known before any job only for generated text read one character per token;
    # for other sources the training job checks it before it trains.
    ds = config["datasets"][exp["dataset"]]
    if ds["source"] != "generator" or config["tokenizers"][exp["tokenizer"]]["kind"] != "char":
        return
    available = ds["symbols"]["train"]
    largest = max(exp["data_sizes"])
    if largest + 1 > available:
        raise ConfigError(
            f"config error: experiments.{name}.data_sizes = {largest}: exceeds the {available} training "
            f"symbols of datasets.{exp['dataset']} by {largest + 1 - available}"
        )


def expand_grid(config: dict) -> list[Cell]:
    """Every cell of every experiment, in a stable order (experiment, model, data, seed)."""
    cells = []
    for experiment, exp in config["experiments"].items():
        for size in exp["models"]:
            for tokens in exp["data_sizes"]:
                for seed in exp["seeds"]:
                    cells.append(Cell(experiment, model_name(size), data_name(tokens), seed,
                                      size["n_layer"], size["d_model"], size["n_head"], tokens,
                                      size.get("lr")))
    return cells


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
        "seed": cell.seed,
        **{k: v for k, v in training.items() if k not in ("threads", "lr_rule", "lr_base_width")},
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
