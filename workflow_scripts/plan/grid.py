"""The grid of cells: one function for the DAG and the jobs, so they never disagree.

``expand_grid`` turns a validated config (``workflow_scripts.plan.config``) into the
list of cells, one training job each; ``workflow_scripts.plan.flags`` gives a cell's
job its flags. Plain arithmetic, no torch: every Snakemake process evaluates it.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow_scripts.plan.sizes import mlp_width, nonembedding_parameters
from workflow_scripts.plan.sweep import Setting, setting_name, settings


@dataclass(frozen=True)
class Cell:
    """One training job of the grid."""

    experiment: str
    model: str  # wildcard, e.g. "L2-d32-h2"
    data: str  # wildcard, e.g. "D65536"
    seed: int
    n_layer: int
    width: int  # a transformer's d_model, an mlp's hidden width, a cnn's first channels
    n_head: int  # 0 for mlp and cnn
    data_size: int  # D: tokens of a transformer cell, samples of an mlp or cnn cell
    lr: float | None = None  # the size's own peak learning rate, if it has one
    compute_budget: float | None = None  # C of an IsoFLOP grid's cell, if the grid gives budgets
    family: str = "transformer"
    setting: Setting = ()  # the cell's training.sweep setting (workflow_scripts.plan.sweep); () unswept

    @property
    def on_samples(self) -> bool:  # trains on a samples dataset (D counts samples, not tokens)
        return self.family != "transformer"

    @property
    def branch_key(self) -> tuple[str, str, str]:  # cells that may share a WSD stable phase
        return (self.experiment, self.model, self.seed_name)

    @property
    def setting_name(self) -> str:  # e.g. "lr=x2,beta2=0.99"; "" unswept
        return setting_name(self.setting)

    @property
    def seed_name(self) -> str:  # wildcard, e.g. "seed0", or with a sweep's setting "lr=x2/seed0"
        return f"{self.setting_name}/seed{self.seed}" if self.setting else f"seed{self.seed}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.experiment, self.model, self.data, self.seed_name)


SAMPLE_FAMILIES = ("mlp", "cnn")


def trains_on_samples(exp: dict) -> bool:
    """Whether the experiment's model family reads (x, y) samples (mlp, cnn) rather than tokens."""
    return exp["model"]["family"] in SAMPLE_FAMILIES

# Generators whose output is (x, y) samples rather than text (workflow_scripts.data.samples).
SAMPLE_GENERATORS = ("sine", "mnist1d")


def model_name(size: dict, family: str = "transformer") -> str:
    """``L2-d32-h2`` for a transformer, ``mlp-L3-w64`` / ``cnn-L2-w16`` for the sample families."""
    if family in SAMPLE_FAMILIES:
        return f"{family}-L{size['n_layer']}-w{size['width']}"
    return f"L{size['n_layer']}-d{size['d_model']}-h{size['n_head']}"


def is_samples_dataset(ds: dict) -> bool:
    """A dataset (of a validated config) of (x, y) samples (sine, MNIST-1D, image tables) rather than text."""
    if ds["source"] == "generator":
        return ds["generator"] in SAMPLE_GENERATORS
    return bool(ds["image_column"])


def size_sweep(sweep: dict) -> list[dict]:
    """Model sizes generated from one knob: ``base[scale]`` times ``factor**k`` for k < count.

    Values are rounded to multiples of ``multiple_of`` (e.g. n_head, so heads divide d_model)
    and repeated ones dropped. Scaling n_layer with ``aspect_ratio`` > 0 keeps the width at
    aspect_ratio × n_layer (Kaplan et al. 2020 vary depth at a fixed d_model / n_layer). With
    ``head_dim`` > 0 a transformer has d_model / head_dim heads (and widths are multiples of it).
    """
    if sweep["scale"] not in sweep["base"]:
        raise ValueError(f"size_sweep.scale = {sweep['scale']!r}: expected a key of size_sweep.base "
                         f"{sorted(sweep['base'])}")
    sizes = []
    for k in range(sweep["count"]):
        size = sweep_size(sweep, k)
        if size not in sizes:
            sizes.append(size)
    return sizes


def sweep_size(sweep: dict, k: int) -> dict:
    """The sweep's k-th size, for any integer k: k < 0 and k >= count continue it past its ends
    (the sizes an IsoFLOP grid adds to bracket its optimum, ``workflow_scripts.plan.bracket``)."""
    base, key = sweep["base"], sweep["scale"]
    width_key = "d_model" if "d_model" in base else "width"
    size = {**base, "lr": None}  # the rate follows training.lr_rule, not the base's own
    step = sweep["multiple_of"] if key != "n_layer" else 1
    size[key] = max(step, int(round(base[key] * sweep["factor"] ** k / step)) * step)
    if key == "n_layer" and sweep["aspect_ratio"]:
        unit = sweep["head_dim"] or size.get("n_head", 1)
        size[width_key] = max(unit, int(round(sweep["aspect_ratio"] * size["n_layer"] / unit)) * unit)
    if sweep["head_dim"] and "n_head" in size:  # heads of a fixed width, as GPT-2 and Chinchilla
        size["n_head"] = max(1, size[width_key] // sweep["head_dim"])
    return size


def resolve_model_sizes(config: dict) -> None:
    """Append each experiment's ``size_sweep`` sizes to its ``models``, in place (once)."""
    for exp in config["experiments"].values():
        sweep = exp["size_sweep"]
        if sweep["count"]:  # idempotent: sizes already listed are not added again
            exp["models"] = list(exp["models"]) + [s for s in size_sweep(sweep) if s not in exp["models"]]


def data_name(tokens: int) -> str:
    return f"D{tokens}"


def budget_name(budget: float) -> str:
    """``1e15`` → ``C1e15``, ``3.16e15`` → ``C3.16e15`` (six significant digits, no ``+``)."""
    mantissa, _, exponent = f"{float(budget):.5e}".partition("e")
    return f"C{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def known_train_tokens(config: dict, exp: dict) -> int | None:
    """Training tokens of the experiment's split when the config alone fixes them, else None."""
    # Known before any job only for generated text read one character per token;
    # for other sources the training job checks the budget before it trains.
    ds = config["datasets"][exp["dataset"]]
    if ds["source"] == "generator" and is_samples_dataset(ds):
        return ds["samples"]["train"]  # generated samples: one per unit of D
    if ds["source"] != "generator" or config["tokenizers"][exp["tokenizer"]]["kind"] != "char":
        return None
    return ds["symbols"]["train"]


def _budget_point(config: dict, exp: dict, size: dict, budget: float) -> tuple[int, str | None]:
    """A model size's unique tokens at compute budget C, and why the cell is left out (None: kept).

    D = C / (6 N) with N the non-embedding parameters (Kaplan et al. 2020; the same N as metrics'
    C_6ND): unlike the embeddings it is known before the tokenizer fixes the vocabulary. D is
    rounded to whole batches of every epoch; the cell reads D / epochs unique tokens.
    """
    training, context = exp["training"], exp["model"]["context"]
    batch = training["batch_size"] * context
    n = nonembedding_parameters(size["n_layer"], size["d_model"], mlp_width(exp["model"], size["d_model"]))
    wanted = budget / (6 * n)
    tokens = int(round(wanted / (training["epochs"] * batch))) * batch
    available = known_train_tokens(config, exp)
    if tokens < batch:
        return tokens, f"D = C / (6N) = {wanted:.0f} tokens (N = {n}) is less than one batch of {batch} tokens"
    if available is not None and tokens + 1 > available:
        return tokens, f"D = C / (6N) = {wanted:.0f} tokens (N = {n}) exceeds the {available} training tokens"
    low, high = exp["tokens_per_parameter"] or (0, 0)
    if high and not low <= wanted / n <= high:
        return tokens, f"D / N = {wanted / n:.3g} tokens per parameter (N = {n}) is outside [{low:g}, {high:g}]"
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
    """Every cell of every experiment, in a stable order (experiment, model, data, setting, seed).

    An experiment gives data_sizes (cells named D<tokens>) or compute_budgets (cells named
    C<budget>, each model's D following from C; see ``_budget_point``, ``grid_warnings``).
    """
    cells = []
    for experiment, exp in config["experiments"].items():
        family, samples = exp["model"]["family"], trains_on_samples(exp)
        for size in exp["models"]:
            points = [(tokens, data_name(tokens), None) for tokens in exp["data_sizes"]]
            for budget in exp["compute_budgets"]:
                tokens, problem = _budget_point(config, exp, size, budget)
                if problem is None:
                    points.append((tokens, budget_name(budget), float(budget)))
            width, n_head = (size["width"], 0) if samples else (size["d_model"], size["n_head"])
            for data_size, data, budget in points:
                for setting in settings(exp["training"]["sweep"]):
                    for seed in exp["seeds"]:
                        # a size's lr is optional (no schema default): without one, training.lr_rule sets it
                        cells.append(Cell(experiment, model_name(size, family), data, seed, size["n_layer"], width,
                                          n_head, data_size, size.get("lr"), budget, family, setting))
    return cells


def branch_groups(config: dict, cells: list[Cell]) -> dict[tuple[str, str, str], list[Cell]]:
    """Cells that train from a shared WSD stable phase, by (experiment, model, seed), smallest D first.

    Only groups of two or more cells of experiments with schedule wsd and branch true.
    """
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for cell in cells:
        training = config["experiments"][cell.experiment]["training"]
        if training["schedule"] == "wsd" and training["branch"]:
            groups.setdefault(cell.branch_key, []).append(cell)
    return {k: sorted(v, key=lambda c: c.data_size) for k, v in groups.items()
            if len({c.data_size for c in v}) > 1}
