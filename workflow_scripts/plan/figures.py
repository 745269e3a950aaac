"""The figures each experiment gets: the DAG-side view of the figure catalog (torch-free).

The catalog, workflow_scripts/analysis/figures/figures.yaml, lists every figure once with its
report label, its caption (rules/report/<caption>) and what it applies to; the figures CLI
(``workflow_scripts.analysis.figures.draw``) draws its names. Here an experiment is matched
against it from its validated config alone - its grid kind, its task and the laws it fits - so
the DAG asks only for figures that can show something: no accuracy figure for a language model,
no IsoFLOP figure for a data-size grid, no Kaplan figure when neither Kaplan law is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from workflow_scripts.plan.config import load_schema
from workflow_scripts.plan.grid import trains_on_samples
from workflow_scripts.plan.sweep import swept_keys

CATALOG_PATH = Path(__file__).resolve().parents[1] / "analysis" / "figures" / "figures.yaml"
GRIDS = ("data_sizes", "compute_budgets")
TASKS = ("language", "regression", "classification")
# Laws the fit stage leaves out by default where they cannot apply (each law's `applies` in workflow_scripts.analysis.fit.registry):
# IsoFLOP minima need budgets. The curve laws apply: every cell of the workflow writes its curve.
BUDGET_LAWS = ("isoflop",)
# The grid axes a law varies along: by default a law is not asked of a grid with one value on one
# of them (its fit would be skipped, its figure empty).
LAW_AXES = {"L(N)": ("models",), "L(D)": ("data",), "L(N,D)": ("models", "data"),
            "kaplan_L(N,D)": ("models", "data"), "L(N,S)": ("models",), "approach1": ("models",),
            "L(N,S_min)": ("models",)}
# Laws fitted to the curves' gradient noise scale, which only transformer cells measure, and only
# with training.noise_scale (workflow_scripts.analysis.fit.critical_batch).
NOISE_LAWS = ("L(N,S_min)", "L(C_min)")


@dataclass(frozen=True)
class Figure:
    name: str
    label: str
    caption: str
    laws: tuple[str, ...] = ()  # drawn when any is fitted; empty: whatever the laws
    grids: tuple[str, ...] = GRIDS
    tasks: tuple[str, ...] = TASKS
    sweep: bool = False  # drawn only for an experiment with a training.sweep


@cache
def catalog() -> tuple[Figure, ...]:
    """Every figure of figures.yaml, in its order, its keys checked."""
    raw = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
    laws = set(law_names())
    figures = []
    for name, spec in raw.items():
        unknown = set(spec) - {"label", "caption", "laws", "grids", "tasks", "sweep"}
        bad = ({f"laws: {x}" for x in spec.get("laws", ()) if x not in laws}
               | {f"grids: {x}" for x in spec.get("grids", ()) if x not in GRIDS}
               | {f"tasks: {x}" for x in spec.get("tasks", ()) if x not in TASKS})
        if unknown or bad or not {"label", "caption"} <= set(spec):
            raise ValueError(f"{CATALOG_PATH}: figure {name!r} has {sorted(unknown | bad) or 'no label or caption'}; "
                             f"expected label, caption and optional laws (of {sorted(laws)}), grids {GRIDS}, "
                             f"tasks {TASKS}, sweep true")
        figures.append(Figure(name, spec["label"], spec["caption"], *(tuple(spec.get(k, d)) for k, d in (
            ("laws", ()), ("grids", GRIDS), ("tasks", TASKS))), bool(spec.get("sweep", False))))
    return tuple(figures)


@cache
def law_names() -> tuple[str, ...]:
    """Every law a config may name (the schema's enum of analysis.laws)."""
    analysis = load_schema()["$defs"]["experiment"]["properties"]["analysis"]["properties"]
    return tuple(analysis["laws"]["items"]["enum"])


def grid_kind(experiment: dict) -> str:
    """compute_budgets for an IsoFLOP grid, else data_sizes."""
    return "compute_budgets" if experiment["compute_budgets"] else "data_sizes"


def task(config: dict, experiment: dict) -> str:
    """language (text), regression (the sine generator) or classification (mnist1d, image tables)."""
    dataset = config["datasets"][experiment["dataset"]]
    if dataset["source"] == "generator":
        return {"sine": "regression", "mnist1d": "classification"}.get(dataset["generator"], "language")
    return "classification" if dataset["image_column"] else "language"


def fitted_laws(experiment: dict) -> tuple[str, ...]:
    """The laws the experiment fits: analysis.laws, or by default every law that applies to its grid."""
    named = experiment["analysis"]["laws"]
    if named is not None:
        return tuple(named)
    kind = grid_kind(experiment)
    values = {"models": len(experiment["models"]), "data": len(experiment[kind])}
    noise = experiment["training"]["noise_scale"] and not trains_on_samples(experiment)
    return tuple(law for law in law_names() if (kind == "compute_budgets" or law not in BUDGET_LAWS)
                 and (noise or law not in NOISE_LAWS)
                 and all(values[axis] > 1 for axis in LAW_AXES.get(law, ())))


def swept(experiment: dict) -> bool:
    """Whether the experiment trains its cells once per setting of a training.sweep."""
    return bool(swept_keys(experiment["training"]["sweep"]))


def applies(figure: Figure, config: dict, experiment: dict) -> bool:
    return ((swept(experiment) or not figure.sweep) and grid_kind(experiment) in figure.grids and task(config, experiment) in figure.tasks
            and (not figure.laws or bool(set(figure.laws) & set(fitted_laws(experiment)))))


def experiment_figures(config: dict, name: str) -> list[Figure]:
    """The figures of the catalog that apply to the experiment ``name`` of a validated config."""
    experiment = config["experiments"][name]
    return [figure for figure in catalog() if applies(figure, config, experiment)]


def figure_outputs(config: dict) -> list[str]:
    """Every figure file the workflow makes: the PNG and PDF of each figure that applies to each experiment."""
    return [f"results/{name}/figures/{figure.name}.{ext}"
            for name in config["experiments"] for figure in experiment_figures(config, name)
            for ext in ("png", "pdf")]


def compare_outputs(config: dict) -> list[str]:
    """The side-by-side figure and table of each experiment that names others in analysis.compare."""
    return [f"results/{name}/{file}" for name, experiment in config["experiments"].items()
            if experiment["analysis"]["compare"]
            for file in ("figures/compare.png", "figures/compare.pdf", "compare.csv")]
