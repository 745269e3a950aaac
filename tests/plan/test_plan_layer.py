"""The planning layer is torch-free: every Snakemake process (two nested ones inside each SLURM
job) imports it, and it must not pay torch, matplotlib or datasets' imports (seconds each)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from tests.helpers import REPO

BLOCKED = ("torch", "matplotlib", "datasets")

# Runs in a fresh interpreter: a meta-path finder that refuses the heavy packages, then every
# module of workflow_scripts.plan, then (with an argument) Snakemake's own main on the workflow.
SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys

    BLOCKED = {blocked!r}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} imported: the planning layer must not need it")
            return None

    sys.meta_path.insert(0, Refuse())
    for name in BLOCKED:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
        else:
            sys.exit(f"{{name}} imported despite the block")
    import workflow_scripts.plan
    modules = [m.name for m in pkgutil.iter_modules(workflow_scripts.plan.__path__)]
    for name in modules:
        importlib.import_module(f"workflow_scripts.plan.{{name}}")
    print("plan modules:", ",".join(sorted(modules)))
    if len(sys.argv) > 1:
        from snakemake.cli import main

        sys.argv = ["snakemake", *sys.argv[1:]]
        main()
""")


def run_blocked(*snakemake_args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    script = SCRIPT.format(blocked=BLOCKED)
    return subprocess.run([sys.executable, "-c", script, *snakemake_args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_the_plan_layer_imports_without_torch_matplotlib_or_datasets():
    result = run_blocked()
    assert result.returncode == 0, result.stderr[-3000:]
    modules = result.stdout.split("plan modules:")[1].strip().split(",")
    assert {"config", "flags", "grid", "inputs", "jobs", "resources", "sizes"} <= set(modules)


def test_a_dry_run_of_the_default_study_needs_only_the_plan_layer(tmp_path):
    result = run_blocked("--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "-p",
                         "--cores", "2", "--configfile", str(REPO / "config" / "config.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = (result.stdout + result.stderr).splitlines()
    alone = [line for line in output if "python -m workflow_scripts.train.token_cell" in line]
    packs = [line for line in output if "python -m workflow_scripts.train.pack" in line]
    # 6 sizes x 4 data sizes x 1 seed, every one planned: alone, or in a pack of small cells.
    assert len(alone) + sum(line.count("--cell ") for line in packs) == 24 and packs and alone
