"""The folder tree is the architecture: stage packages, one-way layering, no cycles, live references.

Read statically (ast), so a function-local import that hides a cycle counts like any other.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "workflow_scripts"
# What each stage may import besides itself (GUIDE §2: io ← plan ← data, models ← train; analysis uses io).
ALLOWED = {
    "io": set(),
    "jobs": {"io"},  # how a job process ends: any stage's entry point may use it
    "plan": {"io"},
    "data": {"io", "plan"},
    "models": {"io", "plan"},
    "train": {"io", "plan", "data", "models"},
    "analysis": {"io"},
}
DOTTED = re.compile(r"\bworkflow_scripts(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "adapters" not in p.parts[-2:-1]}


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(imported workflow_scripts module, whether the import is inside a function) of one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from workflow_scripts.<pkg> import <name>`: y may be a module of x or a name in it.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                     for a in node.names]
        else:
            continue
        found += [(n, id(node) in local) for n in names if n.startswith("workflow_scripts")]
    return found


def stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_module_sits_in_a_stage_package():
    loose = [m for m in MODULES if m.count(".") == 1 and stage(m) not in ALLOWED]
    assert not loose, f"modules outside the stage packages: {loose}"


def test_layering_goes_one_way():
    wrong = [f"{m} imports {dep}" for m, path in MODULES.items() if stage(m) in ALLOWED
             for dep, _ in imports_of(path)
             if stage(dep) not in ALLOWED[stage(m)] | {stage(m), "jobs"}]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_function_local_imports_of_the_package():
    hidden = [f"{m} imports {dep} inside a function" for m, path in MODULES.items()
              for dep, inside in imports_of(path) if inside]
    assert not hidden, "\n".join(hidden)


def test_no_import_cycles():
    graph = {m: {d for d, _ in imports_of(p) if d in MODULES and d != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else nxt)
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_rules_import_only_the_planning_layer():
    wrong = []
    for smk in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        for line in smk.read_text().splitlines():
            m = re.match(r"\s*(?:from|import)\s+(workflow_scripts[\w.]*)", line)
            if m and not m.group(1).startswith("workflow_scripts.plan"):
                wrong.append(f"{smk.name}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def _text_files():
    for pattern in ("workflow_scripts/**/*.py", "tests/**/*.py", "benchmarks/*.py", "rules/*.smk",
                    "rules/report/*", "Snakefile", "README.md", "Makefile", "config/*.yaml", "profiles/*/*.yaml"):
        yield from (p for p in REPO.glob(pattern) if p.is_file())


def _resolves(dotted: str) -> bool:
    """A module, or a name defined in one (``workflow_scripts.train.token_cell.main``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_dotted_path_in_code_and_docs_resolves():
    pytest.importorskip("torch")
    stale = sorted({f"{p.relative_to(REPO)}: {d}" for p in _text_files()
                    for d in DOTTED.findall(p.read_text(errors="replace")) if not _resolves(d.rstrip("."))})
    assert not stale, "references to modules or names that do not exist:\n" + "\n".join(stale)


def test_every_file_path_in_docs_exists():
    # Source paths named in prose; output paths (results/…/benchmarks/…) are not sources.
    paths = re.compile(r"(?<![\w/.~-])(?:workflow_scripts/[\w./-]*\w|(?:benchmarks|rules|tests)/[\w/-]*\.(?:py|smk|rst|yaml))")
    missing = sorted({f"{p.relative_to(REPO)}: {m}" for p in _text_files()
                      for m in paths.findall(p.read_text(errors="replace"))
                      if "*" not in m and "<" not in m and not (REPO / m).exists()})
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_tests_mirror_the_packages():
    folders = {p.parent.name for p in (REPO / "tests").rglob("test_*.py") if p.parent != REPO / "tests"}
    assert folders <= set(ALLOWED) - {"io", "jobs"} | {"workflow", "benchmarks"}, folders
    stray = [p.name for p in (REPO / "tests").glob("test_*.py") if p.name != "test_layout.py"]
    assert not stray, f"tests outside a package folder: {stray}"
