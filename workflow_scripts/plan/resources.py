"""Scheduler resources of a training cell, estimated from its size and budget.

Snakemake passes these to the executor (local cores and memory, or sbatch's
``--cpus-per-task``, ``--mem``, ``-t`` and ``--gpus``). The estimates are
deliberately generous upper bounds: a job that asks for too little is killed,
one that asks for a little too much only waits a little longer in the queue.
Each retry (``attempt``) multiplies memory and time, so an underestimate
costs one failed attempt, not the study. Profiles override them per rule
(``set-resources: {train_cell: {mem_mb: ..., runtime: ...}}``).

Plain arithmetic, no torch: the DAG is built (and these are evaluated) by
every snakemake process, including the two nested ones inside each SLURM job.
"""

from __future__ import annotations

import math
from typing import Any

from workflow_scripts.plan.grid import Cell
from workflow_scripts.plan.sizes import gpt_parameters, mlp_width

MB = 1024 * 1024
# A fresh `python -m workflow_scripts.train.token_cell` (torch, numpy) peaks near 330 MB
# on the smallest cells (measured, max_rss of the benchmark files).
BASE_MEM_MB = 500
MEM_FLOOR_MB = 1000
# Achieved training throughput, far below the peaks on purpose: a small GPT
# step reaches 50-65% of the fp32 matrix peak (≈185 GFLOP/s per core) only at
# d_model ≥ 256, and tiny cells are dominated by per-step overheads.
CPU_FLOPS_PER_THREAD = 5e9
GPU_FLOPS = 2e12
RUNTIME_FLOOR_MIN = 10
# Evaluation (workflow_scripts.train.evaluation.evaluate) runs EVAL_BATCH windows at a time,
# fewer when their logits would pass EVAL_LOGITS floats (large vocabularies).
EVAL_BATCH = 64
EVAL_LOGITS = 1 << 24
# When the vocabulary is unknown before tokenizing (char tokenizer): bytes.
CHAR_VOCAB_BOUND = 256
# CPU cells under this many training FLOPs (about 100 s of one thread at the throughput
# above) are "small": a cluster profile may run several of them in one job (group
# SMALL_GROUP, `group-components` in profiles/slurm), since each SLURM job costs
# seconds of queueing and of Snakemake starting inside it.
SMALL_CELL_FLOPS = 5e11
SMALL_GROUP = "train_small"


def vocab_bound(tokenizer: dict) -> int:
    """An upper bound on the vocabulary before the tokenizer exists."""
    return tokenizer["vocab_size"] if tokenizer["kind"] == "bpe" else CHAR_VOCAB_BOUND


def parameter_bound(cell: Cell, d_ff: int, context: int, vocab: int, tied: bool = True) -> int:
    """Weights of the cell's GPT, with embeddings, at a vocabulary bound (no torch)."""
    return gpt_parameters(cell.n_layer, cell.width, d_ff, vocab, context, tied)["N"]


def train_mem_mb(cell: Cell, d_ff: int, context: int, vocab: int, batch_size: int, attempt: int = 1,
                 tied: bool = True) -> int:
    """Peak resident memory of one training process, in MB, rounded up to 100 MB.

    fp32 weights, gradients and AdamW's two moments (16 bytes per weight);
    activations kept for the backward pass, 34·s·b·h bytes per layer in 16-bit
    (Korthikanti et al. 2022, eq. 2, without the 5·a·s²·b attention scores that
    scaled_dot_product_attention does not store), doubled for fp32; and B·T·V
    fp32 logits, three copies in training (logits, softmax, gradient) and two
    in evaluation, at most EVAL_LOGITS floats each.
    """
    weights = 16 * parameter_bound(cell, d_ff, context, vocab, tied)
    activations = 2 * 34 * cell.n_layer * context * batch_size * cell.width
    logits = 4 * max(3 * batch_size * context * vocab, 2 * min(EVAL_BATCH * context * vocab, EVAL_LOGITS))
    estimate = BASE_MEM_MB + (weights + activations + logits) / MB
    return int(math.ceil(max(MEM_FLOOR_MB, 1.5 * estimate) * attempt / 100) * 100)


def train_flops(cell: Cell, d_ff: int, context: int, vocab: int, epochs: int, tied: bool = True) -> float:
    """Training FLOPs: 6 per weight per token plus attention's 6·L·T·d (Kaplan et al. 2020, table 1)."""
    per_token = 6 * parameter_bound(cell, d_ff, context, vocab, tied) + 6 * cell.n_layer * context * cell.width
    return per_token * cell.data_size * epochs


def train_runtime_min(flops: float, threads: int, gpus: int, attempt: int = 1) -> int:
    """Wall-time limit in minutes: FLOPs over a conservative throughput, with a floor."""
    throughput = GPU_FLOPS * gpus if gpus else CPU_FLOPS_PER_THREAD * threads
    return int(math.ceil(max(RUNTIME_FLOOR_MIN, 2 * flops / throughput / 60) * attempt))


def cell_shape(config: dict, cell: Cell) -> tuple[dict, int, int, int]:
    """The cell's experiment, MLP width, context and vocabulary bound."""
    exp = config["experiments"][cell.experiment]
    vocab = vocab_bound(config["tokenizers"][exp["tokenizer"]])
    return exp, mlp_width(exp["model"], cell.width), exp["model"]["context"], vocab


# Samples cells (mlp, cnn) hold their whole dataset as float32 on the device: MNIST's
# 70,000 images are 220 MB, so this covers the image studies with room for activations.
SAMPLES_MEM_MB = 2000
# Inputs a samples model may read per sample (MNIST's 28 × 28), and the spatial positions a
# cnn's first block convolves over, for the compute bound below; a generator's own inputs
# where the config fixes them (workflow_scripts.data.samples: sine's x, MNIST-1D's 40 points;
# tests/plan/test_resources.py checks them against the generated arrays).
SAMPLE_INPUTS_BOUND = 784
GENERATOR_INPUTS = {"sine": 1, "mnist1d": 40}


def sample_inputs(ds: dict) -> int:
    """Inputs per sample of a samples dataset: a generator's own, else the bound (image tables)."""
    if ds["source"] != "generator":
        return SAMPLE_INPUTS_BOUND
    return GENERATOR_INPUTS.get(ds["generator"], SAMPLE_INPUTS_BOUND)


def samples_train_flops(cell: Cell, epochs: int, inputs: int) -> float:
    """An upper bound on an mlp or cnn cell's training FLOPs (6 per weight use per sample)."""
    width = cell.width  # channels of the first block (cnn), the hidden width (mlp)
    if cell.family == "cnn":  # 3 × 3 kernels, channels doubling per block, every position of the input
        per_sample = sum(9 * (width << i) * (width << max(i - 1, 0)) for i in range(cell.n_layer))
        per_sample *= inputs
    else:
        per_sample = inputs * width + cell.n_layer * width * width
    return 6.0 * per_sample * cell.data_size * epochs


def cell_flops(config: dict, cell: Cell) -> float:
    """The cell's training FLOPs bound (its runtime and whether it is small)."""
    exp = config["experiments"][cell.experiment]
    if cell.on_samples:
        inputs = sample_inputs(config["datasets"][exp["dataset"]])
        return samples_train_flops(cell, exp["training"]["epochs"], inputs)
    _, d_ff, context, vocab = cell_shape(config, cell)
    return train_flops(cell, d_ff, context, vocab, exp["training"]["epochs"], exp["model"]["tied_embeddings"])


def train_resources(config: dict, cell: Cell, attempt: int = 1) -> dict[str, Any]:
    """threads, mem_mb, runtime (minutes) and gpu of one cell of a validated config."""
    exp = config["experiments"][cell.experiment]
    training = exp["training"]
    threads, gpus = training["threads"], exp["resources"]["gpu"]
    if cell.on_samples:
        mem_mb = SAMPLES_MEM_MB * attempt
    else:
        _, d_ff, context, vocab = cell_shape(config, cell)
        batch = dict(cell.setting).get("batch_size", training["batch_size"])  # a swept batch (plan.sweep)
        mem_mb = train_mem_mb(cell, d_ff, context, vocab, batch, attempt,
                              exp["model"]["tied_embeddings"])
    return {
        "threads": threads,
        "mem_mb": mem_mb,
        "runtime": train_runtime_min(cell_flops(config, cell), threads, gpus, attempt),
        **gpu_request(exp),
    }


def gpu_request(exp: dict) -> dict[str, Any]:
    """The GPUs each cell of the experiment asks for, and their model."""
    gpus = exp["resources"]["gpu"]
    # Only GPU cells name a model: the SLURM plugin sends `--gpus=<model>:<n>` whenever one is set.
    return {"gpu": gpus, "gpu_model": exp["resources"]["gpu_model"] if gpus else ""}


def train_group(config: dict, cell: Cell) -> str | None:
    """SMALL_GROUP for a CPU cell under SMALL_CELL_FLOPS, else None (a job of its own).

    GPU cells stay alone: a group job asks for the GPUs of all its cells at once.
    """
    small = cell_flops(config, cell) < SMALL_CELL_FLOPS
    return SMALL_GROUP if small and not config["experiments"][cell.experiment]["resources"]["gpu"] else None
