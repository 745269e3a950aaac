"""What the machine running benchmarks/gpu_check.py offers, and why a part cannot run on it.

The device machine runs its own image's python and torch, offline: what it lacks (Snakemake, for
parts a and e) travels as wheels made here. ``wheel_command`` prints the ``pip download`` that
makes them, from the distributions installed in this environment.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import sys

import torch


def environment() -> dict:
    """Versions and the accelerator, as the summary records them."""
    record = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
              "cuda_available": torch.cuda.is_available(), "gpu": None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        record.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                      multiprocessors=props.multi_processor_count, gpu_count=torch.cuda.device_count())
    for name in ("snakemake", "transformers", "numpy", "pandas"):
        record[name] = version(name)
    return record


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cuda_reason(env: dict) -> str | None:
    """Why CUDA parts cannot run, or None."""
    if env["cuda_available"]:
        return None
    if env["cuda_build"] is None:
        return f"CUDA is not available: torch {env['torch']} is a build without CUDA"
    return f"CUDA is not available: torch {env['torch']} (CUDA {env['cuda_build']}) sees no GPU"


def snakemake_reason() -> str | None:
    """Why the Snakemake parts cannot run, or None."""
    if importlib.util.find_spec("snakemake") is None:
        return (f"snakemake is not installed for {sys.executable}: carry it as wheels "
                "(`python benchmarks/gpu_check.py --wheels snakemake` prints the pip download)")
    return None


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str) -> dict[str, str]:
    """``root`` and every distribution it needs (extras left out), as installed here: {name: version}."""
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if _key(name) in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[_key(name)] = dist.version
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
    return found


# Already in the device image (KINDS.md, 2026-11): carrying a second version of these breaks the install.
ON_DEVICE = {"attrs", "certifi", "charset-normalizer", "click", "filelock", "idna", "jinja2", "markupsafe",
             "packaging", "psutil", "pyyaml", "requests", "tabulate", "typing-extensions", "urllib3", "wrapt",
             "numpy", "pandas", "transformers", "tokenizers", "huggingface-hub", "safetensors", "regex", "tqdm"}


def wheel_command(root: str) -> str:
    """The ``pip download`` of ``root``'s closure minus what the device image has, for its Python 3.12
    (run here, where pip reaches the index; KINDS.md names the image's packages)."""
    pins = " ".join(f"{name}=={v}" for name, v in sorted(closure(root).items()) if name not in ON_DEVICE)
    if not pins:
        return f"# {root} is not installed here (or the device image has all of it)"
    platforms = " ".join(f"--platform {p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                                     "manylinux2014_x86_64"))
    # A distribution published as source only is built here into a pure-Python wheel instead.
    return (f"echo /.whl/ >> .git/info/exclude; for p in {pins}; do python3 -m pip download --no-deps "
            f"--only-binary=:all: --python-version 3.12 --implementation cp {platforms} -d .whl $p "
            f"|| python3 -m pip wheel --no-deps -w .whl $p; done")
