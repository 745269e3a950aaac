"""Config validation: the schema, then the checks a schema cannot express.

``snakemake.utils.validate`` checks the config against ``config/schema.yaml``
and fills its defaults inside the workflow; ``load_config`` does the same
outside it (tests, notebooks), with the same schema. ``check_config`` adds
the checks a schema cannot express (names that refer to other entries, the
keys each model family needs, divisibility, budgets against the corpus);
``workflow_scripts.plan.grid.expand_grid`` then turns the valid config into cells.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from workflow_scripts.plan import checks, local_files
from workflow_scripts.plan.sweep import check_sweep
from workflow_scripts.plan.grid import (
    SAMPLE_FAMILIES, _budget_point, budget_name, is_samples_dataset, known_train_tokens, resolve_model_sizes,
    trains_on_samples,
)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


class ConfigError(ValueError):
    """A config value is wrong; the message is one line naming key, value and expectation."""

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


def _check_bracket(name: str, exp: dict) -> None:
    if exp["bracket"]["rounds"] and not (exp["compute_budgets"] and exp["size_sweep"]["count"]):
        raise ConfigError(f"config error: experiments.{name}.bracket.rounds = {exp['bracket']['rounds']}: "
                          "expected 0 without both compute_budgets and a size_sweep (bracketing extends "
                          "the sweep of an IsoFLOP grid)")


def check_config(config: dict) -> None:
    """Checks beyond the schema; raises ConfigError with one line for the first problem.

    Also resolves each experiment's ``size_sweep`` into its ``models`` (in place).
    """
    for problem in (checks.non_finite(config), checks.bad_name(config)):
        if problem:
            raise ConfigError(problem)
    experiments = config.get("experiments", {})
    if not experiments:
        raise ConfigError("config error: experiments = {}: expected at least one experiment (the grid is empty)")
    resolve_model_sizes(config)
    for name, exp in experiments.items():
        where = f"experiments.{name}"
        _check_reference(config, where, "dataset", exp["dataset"], "datasets")
        samples = is_samples_dataset(config["datasets"][exp["dataset"]])
        if not samples:
            _check_reference(config, where, "tokenizer", exp["tokenizer"], "tokenizers")
        if exp["transfer"]:
            _check_reference(config, where, "transfer", exp["transfer"], "datasets")
        for key in ("models", "seeds"):
            if not exp[key]:
                raise ConfigError(f"config error: {where}.{key} = []: expected at least one entry (the grid is empty)")
        _check_family(config, where, exp, samples)
        _check_sizes(where, exp)
        _check_grid_axis(config, name, exp)
        _check_bracket(name, exp)
        _check_schedule(name, exp)
        problem = check_sweep(where, exp, samples)
        if problem:
            raise ConfigError(problem)
    for name, ds in config.get("datasets", {}).items():
        _check_dataset(name, ds)
    for name, tok in config.get("tokenizers", {}).items():
        _check_tokenizer(name, tok)


def _check_reference(config: dict, where: str, key: str, value: str, table: str) -> None:
    if value not in config.get(table, {}):
        known = sorted(config.get(table, {}))
        raise ConfigError(
            f"config error: {where}.{key} = {json.dumps(value)}: expected one of {known} (the {table} defined)"
        )


# The size keys each family needs (besides n_layer, which all have).
_FAMILY_KEYS = {"transformer": ("d_model", "n_head"), "mlp": ("width",), "cnn": ("width",)}


def _check_family(config: dict, where: str, exp: dict, samples: bool) -> None:
    """The family fits the data (transformers read tokens, mlp and cnn read samples) and each size."""
    family = exp["model"]["family"]
    if samples != (family in SAMPLE_FAMILIES):
        kind = "samples (sine, mnist1d or an image table)" if samples else "text"
        wanted = "mlp or cnn" if samples else "transformer"
        raise ConfigError(f"config error: {where}.model.family = {json.dumps(family)}: expected {wanted} for the "
                          f"{kind} dataset {json.dumps(exp['dataset'])}")
    if samples and exp["transfer"]:
        raise ConfigError(f"config error: {where}.transfer = {json.dumps(exp['transfer'])}: expected \"\" for "
                          f"family {family} (transfer sets are text, evaluated by transformer cells)")
    if samples and exp["compute_budgets"]:
        raise ConfigError(f"config error: {where}.compute_budgets = {json.dumps(exp['compute_budgets'])}: "
                          f"expected [] for family {family} (IsoFLOP grids are for transformers; use data_sizes)")
    if not samples and exp["training"]["batch_size"] == 0:
        raise ConfigError(f"config error: {where}.training.batch_size = 0: expected >= 1 for family transformer "
                          "(full batch is for samples)")
    for i, size in enumerate(exp["models"]):
        for key in _FAMILY_KEYS[family]:
            if size.get(key) is None:
                raise ConfigError(f"config error: {where}.models.{i}.{key} = null: expected an integer >= 1 for "
                                  f"family {family} (sizes are {{n_layer, {', '.join(_FAMILY_KEYS[family])}}})")
        if family == "transformer" and size["d_model"] % size["n_head"]:
            raise ConfigError(
                f"config error: {where}.models.{i}.n_head = {size['n_head']}: "
                f"expected a divisor of d_model = {size['d_model']}"
            )


def _check_sizes(where: str, exp: dict) -> None:
    """Each size, also those size_sweep generated, within the schema's bounds; no shape, data size or seed twice."""
    for i, size in enumerate(exp["models"]):
        for error in _size_validator().iter_errors(size):
            error.path.extendleft(reversed([*where.split(".", 1), "models", i]))  # where it is in the config
            raise ConfigError(describe_validation_error(error))
    problem = checks.repeated_entry(where.removeprefix("experiments."), exp)
    if problem:
        raise ConfigError(problem)


@functools.cache
def _size_validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema()["$defs"]["model_size"])


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
    if trains_on_samples(exp):
        _check_budget_fits_corpus(config, name, exp)
        return
    smallest_batch = exp["training"]["batch_size"] * exp["model"]["context"]
    for tokens in sizes:
        if tokens * exp["training"]["epochs"] < smallest_batch:
            raise ConfigError(
                f"config error: {where}.data_sizes = {tokens}: expected at least one batch of "
                f"batch_size × context = {smallest_batch} tokens"
            )
    window = exp["tokens_per_parameter"]
    if window and (len(window) != 2 or window[0] > window[1]):
        raise ConfigError(f"config error: {where}.tokens_per_parameter = {json.dumps(window)}: "
                          "expected [low, high] with low <= high, or []")
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
    problem = local_files.local_files_problem(ds) if source == "local" else None
    if problem:
        raise ConfigError(f"config error: datasets.{name}.path = {json.dumps(ds['path'])}: {problem}")
    if source == "hf" and ds.get("streaming") and not ds.get("max_chars"):
        raise ConfigError(
            f"config error: datasets.{name}.max_chars = {ds.get('max_chars', 0)}: "
            "expected > 0 with streaming (a streamed corpus is read until the cap)"
        )


# Folders of results/data/<dataset>/ beside the tokenizers' own.
_RESERVED_TOKENIZER_NAMES = ("raw", "samples", "logs", "benchmarks")


def _check_tokenizer(name: str, tok: dict) -> None:
    if name in _RESERVED_TOKENIZER_NAMES:
        raise ConfigError(f"config error: tokenizers.{name}: expected a name other than "
                          f"{list(_RESERVED_TOKENIZER_NAMES)} (folders of results/data/<dataset>/)")
    if tok.get("kind") != "pretrained":
        return
    path = tok.get("path", "")
    if not path:
        raise ConfigError(
            f'config error: tokenizers.{name}.path = "": '
            "expected a tokenizer.json file or a hub id for kind pretrained"
        )
    problem = local_files.tokenizer_file_problem(path)
    if problem:
        raise ConfigError(f"config error: tokenizers.{name}.path = {json.dumps(path)}: {problem}")
    if not path.endswith(".json") and not tok.get("revision"):
        raise ConfigError(
            f'config error: tokenizers.{name}.revision = "": '
            f"expected a commit hash or tag for the hub id {path!r}"
        )



def _check_budget_fits_corpus(config: dict, name: str, exp: dict) -> None:
    available = known_train_tokens(config, exp)
    largest = max(exp["data_sizes"])
    # A token cell reads D + 1 tokens (the last target); a samples cell reads D samples.
    needed, unit = (largest, "samples") if trains_on_samples(exp) else (largest + 1, "symbols")
    if available is not None and needed > available:
        raise ConfigError(
            f"config error: experiments.{name}.data_sizes = {largest}: exceeds the {available} training "
            f"{unit} of datasets.{exp['dataset']} by {needed - available}"
        )

