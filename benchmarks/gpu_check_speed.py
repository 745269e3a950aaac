"""Parts b and c of benchmarks/gpu_check.py: a GPT-2-small step's throughput and MFU, and a small cell's
launch overhead, each against the dense matrix peak measured in the same run.

The training step is the project's own (``train_throughput.training_step``: forward under autocast,
loss, backward, norm clip, the AdamW of ``workflow_scripts.train.optim.make_optimizer``), timed with a
device synchronisation after every step, as ``workflow_scripts.train.token_cell`` pays one for
``loss.item()``.
"""

from __future__ import annotations

import sys
import time

import torch

import train_throughput as tt
from workflow_scripts.models.transformer import GPT, GPTConfig, count_parameters, training_flops
from workflow_scripts.train import device as devices
from workflow_scripts.train.cell_config import TrainConfig
from workflow_scripts.train.optim import make_optimizer

# Hopper runs bf16 products; a CPU smoke run stays fp32 (its bf16 is slower at these sizes, GUIDE sec. 5).
PRECISION = {"cuda": "bf16", "cpu": "fp32"}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced(fn, device):
    """``fn`` followed by a wait for the device: a timed call then measures work done, not work queued."""

    def call() -> None:
        fn()
        synchronize(device)

    return call


def matmul_peak_job(device, precision: str, n: int, products: int = 10):
    """``products`` large dense matrix products in the run's precision, then one sync, and their FLOPs:
    the peak MFU is measured against (random data: zeros run faster on Hopper, KINDS.md)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)

    def run() -> None:
        for _ in range(products):
            torch.matmul(a, b, out=out)

    return synced(run, device), products * 2 * n**3


def gpt_config(model: dict):
    return GPTConfig(vocab_size=model["vocab_size"], context=model["context"], n_layer=model["n_layer"],
                     d_model=model["d_model"], n_head=model["n_head"], d_ff=4 * model["d_model"])


def flops_per_token(cfg) -> dict[str, float]:
    """Two accountings of a training token: the project's (Hoffmann et al. 2022, app. F, as metrics.json
    records C) and nanoGPT's (6 N + 12 L T d, N without the position table, Chowdhery et al. 2022, app. B),
    the usual basis of published MFU; the first counts the embedding lookup as a product and exceeds it."""
    n = count_parameters(cfg)["N"] - cfg.context * cfg.d_model
    return {"project": training_flops(cfg, 1)["flops_per_token"],
            "nanogpt": 6 * n + 12 * cfg.n_layer * cfg.context * cfg.d_model}


def hf_peer(cfg, ours, device):
    """Hugging Face's GPT2LMHeadModel of ``cfg``'s shape with ours's weights, or the reason there is none."""
    try:
        import transformers  # noqa: F401  (an optional peer: the device image has it, CI may not)
    except ImportError:
        return None, (f"transformers is not installed for {sys.executable} (the device image has it): "
                      "`pip install -e .[bench]`, or carry its wheel, `pip download --no-deps --only-binary=:all: "
                      "--python-version 3.12 -d .whl transformers` (pure Python; tokenizers, safetensors and "
                      "huggingface-hub with it where missing)")
    hf = tt.hf_twin(cfg)
    tt.copy_weights(ours, hf)
    return hf.to(device), None


def check_same_function(ours, hf, x, y, device) -> float:
    """Both models' loss on one batch in fp32 (TF32 off), before any timing: relative difference."""
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            a = ours(x, y)[1].item()
            b = hf(input_ids=x, labels=y, shift_labels=y).loss.item()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    if abs(a - b) > 1e-3 * abs(b):
        raise AssertionError(f"ours and GPT2LMHeadModel disagree on one batch: loss {a} vs {b}")
    return abs(a - b) / abs(b)


def step_job(model, loss_fn, device, precision: str, grad_clip: float):
    optimizer = make_optimizer(model, TrainConfig(), device)
    step = tt.training_step(model, loss_fn, optimizer, lambda: devices.autocast(device, precision), grad_clip)
    return synced(step, device)


def warm(jobs: dict, errors: dict) -> dict:
    """Call each job once (compilation, allocation); a job that fails is dropped and its error kept."""
    kept = {}
    for name, (fn, work) in jobs.items():
        try:
            fn()
            kept[name] = (fn, work)
        except Exception as error:  # a failed compile must not cost the other measurements
            errors[name] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return kept


def throughput_jobs(cfg, ours, hf, hf_reason, x, y, device, precision: str, settings: dict):
    """The timed jobs ({name: (synced call, tokens or FLOPs)}) and why any was left out."""
    tokens, grad_clip = x.numel(), 1.0
    jobs = {"ours_eager": (step_job(ours, lambda m: m(x, y)[1], device, precision, grad_clip), tokens)}
    left_out = {}
    if settings["compile"]:
        compiled = torch.compile(ours)
        jobs["ours_compiled"] = (step_job(compiled, lambda m: m(x, y)[1], device, precision, grad_clip), tokens)
    else:
        left_out["ours_compiled"] = "skipped: compile off for this run (smoke mode)"
    if hf is not None:
        jobs["hf_eager"] = (step_job(hf, lambda m: m(input_ids=x, labels=y, shift_labels=y).loss, device,
                                     precision, grad_clip), tokens)
    else:
        left_out["hf_eager"] = f"skipped: {hf_reason}"
    jobs["peak"] = matmul_peak_job(device, precision, settings["peak_n"])
    return jobs, left_out


def rate_rows(rates: dict, cfg, targets: dict) -> dict:
    """Tokens/s, MFU and ratios to GPT2LMHeadModel from the timed rates, and the targets met or not."""
    peak, accounting = rates["peak"][0], flops_per_token(cfg)
    rows = {name: {"model": name, "tokens_per_s": rates[name][0],
                   "mfu": accounting["nanogpt"] * rates[name][0] / peak,
                   "mfu_project_accounting": accounting["project"] * rates[name][0] / peak}
            for name in ("ours_eager", "ours_compiled", "hf_eager") if name in rates}
    result = {"peak_tflops": peak / 1e12, "flops_per_token": accounting, "rows": list(rows.values()),
              "mfu_basis": "mfu: nanoGPT's 6N + 12LTd per token; mfu_project_accounting: metrics.json's C"}
    for name in ("ours_eager", "ours_compiled"):
        if name in rows and "hf_eager" in rows:
            result[f"ratio_{name}_to_hf"] = rows[name]["tokens_per_s"] / rows["hf_eager"]["tokens_per_s"]
    mfu, ratio = rows.get("ours_compiled", {}).get("mfu"), result.get("ratio_ours_eager_to_hf")
    # None: not measured in this run (no compile, no transformers).
    result["targets"] = {
        f"mfu_compiled >= {targets['mfu_compiled']}": None if mfu is None else mfu >= targets["mfu_compiled"],
        f"ratio_ours_eager_to_hf >= {targets['ratio_to_hf']}": (
            None if ratio is None else ratio >= targets["ratio_to_hf"]),
    }
    return result


def throughput(device_name: str, settings: dict) -> dict:
    """Part b: tokens/s and MFU of ours (eager, compiled) and GPT2LMHeadModel, the same batch and weights."""
    device, precision = torch.device(device_name), PRECISION[device_name]
    cfg = gpt_config(settings["model"])
    torch.manual_seed(0)
    ours = GPT(cfg).to(device)
    x, y = (torch.randint(0, cfg.vocab_size, (settings["batch_size"], cfg.context), device=device) for _ in "xy")
    hf, hf_reason = hf_peer(cfg, ours, device)
    result = {"model": settings["model"], "parameters": sum(p.numel() for p in ours.parameters()),
              "batch_size": settings["batch_size"], "precision": precision}
    if hf is not None:
        result["hf_loss_rel_diff"] = check_same_function(ours, hf, x, y, device)
    devices.configure(device, torch.get_num_threads())  # after the fp32 check: TF32 on, as in a cell
    result.update(tf32=torch.backends.cuda.matmul.allow_tf32, fused_adamw=devices.fused_adamw(device))
    jobs, result["errors"] = throughput_jobs(cfg, ours, hf, hf_reason, x, y, device, precision, settings)
    started = time.perf_counter()
    jobs = warm(jobs, result["errors"])
    result["warmup_s"] = time.perf_counter() - started
    rates = tt.time_interleaved(jobs, tt.Clock("wall", torch.get_num_threads()), settings["repeats"],
                                settings["rep_seconds"])
    result.update(rate_rows(rates, cfg, settings["targets"]))
    result["checks"] = {"ours_eager_measured": "ours_eager" in rates,
                        "every_rate_positive": all(r["tokens_per_s"] > 0 for r in result["rows"])}
    return result


def graph_step(model, x, y, optimizer, grad_clip: float, precision: str):
    """The whole training step captured once as a CUDA graph (PyTorch's whole-network capture recipe);
    returns its replay. AdamW must be ``capturable`` (its step count stays on the device)."""
    for group in optimizer.param_groups:
        group["capturable"] = True
    # cache_enabled=False: autocast's weight-cast cache does not survive graph capture (torch.cuda.graphs
    # documentation).
    step = tt.training_step(model, lambda m: m(x, y)[1], optimizer, lambda: torch.autocast(
        "cuda", dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False), grad_clip)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as the recipe asks
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # Gradients None before capture: the captured backward allocates them in the graph's own memory,
    # where each replay writes them afresh (the step's own zero_grad then finds nothing to drop).
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def seconds_per_step(fn, steps: int, device) -> float:
    fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def overhead(device_name: str, settings: dict) -> dict:
    """Part c: a small cell's step as token_cell takes it (a sync per step), without the sync, and replayed
    as a CUDA graph, against the time its FLOPs take at the measured peak."""
    device, precision = torch.device(device_name), PRECISION[device_name]
    devices.configure(device, torch.get_num_threads())
    cfg = gpt_config(settings["model"])
    batch, steps = settings["batch_size"], settings["steps"]
    x, y = (torch.randint(0, cfg.vocab_size, (batch, cfg.context), device=device) for _ in "xy")
    peak_fn, peak_work = matmul_peak_job(device, precision, settings["peak_n"])
    peak = peak_work / seconds_per_step(peak_fn, 10, device)

    def fresh():
        torch.manual_seed(0)
        model = GPT(cfg).to(device)
        return model, make_optimizer(model, TrainConfig(), device)

    model, optimizer = fresh()
    step = tt.training_step(model, lambda m: m(x, y)[1], optimizer,
                            lambda: devices.autocast(device, precision), 1.0)
    times = {"synced": seconds_per_step(synced(step, device), steps, device),
             "async": seconds_per_step(step, steps, device)}
    flop_bound = flops_per_token(cfg)["nanogpt"] * batch * cfg.context / peak
    result = {"model": settings["model"], "batch_size": batch, "steps_timed": steps, "precision": precision,
              "peak_tflops": peak / 1e12, "flop_bound_ms": flop_bound * 1e3}
    if device.type == "cuda":
        try:
            model, optimizer = fresh()
            times["graph"] = seconds_per_step(graph_step(model, x, y, optimizer, 1.0, precision), steps, device)
        except Exception as error:  # recorded, not raised: the eager numbers stand on their own
            result["graph_error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    else:
        result["graph"] = "skipped: CUDA graphs need a CUDA device"
    result.update({f"{k}_ms": v * 1e3 for k, v in times.items()})
    synced_s = times["synced"]
    result["share_above_flop_bound"] = 1 - flop_bound / synced_s
    result["share_lost_to_per_step_sync"] = 1 - times["async"] / synced_s
    if "graph" in times:
        result["share_recovered_by_graph"] = 1 - times["graph"] / synced_s
        result["graph_speedup"] = synced_s / times["graph"]
    result["checks"] = {"steps_finite_and_timed": all(t > 0 for t in times.values())}
    return result

