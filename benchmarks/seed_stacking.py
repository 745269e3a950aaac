"""The seeds of one size trained together (stacked parameters under ``torch.func.vmap``) against the
same seeds trained one after another, in the same run (issue 16, item 2's second route).

    python benchmarks/seed_stacking.py                  # ≈ 1 minute on one CPU thread
    python benchmarks/seed_stacking.py --quick          # ≈ 10 s: two widths, 2 seeds, 2 repeats
    python benchmarks/seed_stacking.py --device cuda    # where a GPU is: models too small to fill it

For each width (depth 2, context 64, batch 16, the default study's vocabulary of 25) it builds
``--seeds`` copies of ``workflow_scripts.models.transformer.GPT``, each from its own seed, and times
one training step of all of them two ways:

- ``separate``: each model's forward, loss, backward and ``torch.optim.AdamW`` step in turn, as
  cells trained one after another in one process (a pack, workflow_scripts.train.pack) take them;
- ``stacked``: ``torch.func.stack_module_state`` of the models, ``vmap(grad_and_value(...))`` of
  one functional forward over the seed axis, and one AdamW over the stacked tensors (Adam is
  elementwise, so this is each seed's own AdamW).

Both peers use plain AdamW with one weight decay for every tensor and no gradient clipping (a global
norm would have to be taken per seed), so they do the same arithmetic. Before timing, the losses
and gradients of both ways at the seeds' first weights and the same batches are compared: they must agree to float tolerance
(relative to each seed's largest gradient), or the benchmark stops (a faster wrong step is no peer).
Parameters are not compared after steps: Adam's first steps move each weight by about ±lr whatever
its gradient's size, so a float-level difference in a near-zero gradient can flip a step.
Repeats alternate the order; the median is reported, with the 2048³ fp32 matrix product timed beside
them (the peak) and the model-FLOP utilisation of each way (``training_flops`` per token).

What was measured (2026-12-03, one thread, this machine's 2-core CPU, quiet) is in the README's
Measured section: on this CPU stacking does not pay — ``scaled_dot_product_attention`` has no
batching rule and runs per seed, and from width 24 up the separate steps already spend their time in
matrix products, so the seeds of a cell run no faster together than one after another.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the sibling benchmarks, and this checkout's workflow_scripts
import train_throughput as tt  # noqa: E402

WIDTHS = [(12, 2), (24, 2), (48, 4), (64, 4)]  # (d_model, n_head), the default study's range
VOCAB, CONTEXT, BATCH = 25, 64, 16
LR, WEIGHT_DECAY = 1e-3, 0.1


def build(d_model: int, n_head: int, seeds: int, device):
    """The seeds' models (each from its own seed), their separate optimisers, and a stacked twin."""
    import torch
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    from workflow_scripts.models.transformer import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=VOCAB, context=CONTEXT, n_layer=2, d_model=d_model, n_head=n_head,
                    d_ff=4 * d_model)
    models = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        models.append(GPT(cfg).to(device))
    stacked, buffers = stack_module_state(copy.deepcopy(models))  # (S, ...) per tensor, detached
    # The module whose forward runs on the stacked tensors. Not moved to "meta": its tied head would
    # keep a meta weight that functional_call does not replace (measured: garbage losses).
    skeleton = copy.deepcopy(models[0])

    def loss(params, bufs, x, y):
        return functional_call(skeleton, (params, bufs), (x, y))[1]

    grads_and_losses = vmap(grad_and_value(loss))
    separate_opts = [torch.optim.AdamW(m.parameters(), lr=LR, weight_decay=WEIGHT_DECAY) for m in models]
    stacked_opt = torch.optim.AdamW(list(stacked.values()), lr=LR, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(1234)
    x = torch.randint(0, VOCAB, (seeds, BATCH, CONTEXT), generator=generator).to(device)  # (S, B, T)
    y = torch.randint(0, VOCAB, (seeds, BATCH, CONTEXT), generator=generator).to(device)

    def separate() -> None:
        for model, opt, xs, ys in zip(models, separate_opts, x, y):
            opt.zero_grad(set_to_none=True)
            model(xs, ys)[1].backward()
            opt.step()

    def together() -> None:
        grads, _ = grads_and_losses(stacked, buffers, x, y)
        for name, tensor in stacked.items():
            tensor.grad = grads[name]
        stacked_opt.step()

    def difference() -> float:
        """The largest |separate − stacked| of the losses and gradients at the current weights (which
        must be the same: call before either way steps), relative to the largest gradient of each seed."""
        grads, losses = grads_and_losses(stacked, buffers, x, y)
        worst = 0.0
        for i, (model, xs, ys) in enumerate(zip(models, x, y)):
            model.zero_grad(set_to_none=True)
            loss = model(xs, ys)[1]
            loss.backward()
            worst = max(worst, abs(float(loss.detach()) - float(losses[i].detach())) / abs(float(loss.detach())))
            scale = max(float(p.grad.abs().max()) for p in model.parameters())
            for name, p in model.named_parameters():
                worst = max(worst, float((p.grad - grads[name][i].detach()).abs().max()) / scale)
            model.zero_grad(set_to_none=True)
        return worst

    return cfg, separate, together, difference


def measure(args) -> list[dict]:
    import torch

    from workflow_scripts.models.transformer import training_flops
    from workflow_scripts.train import device as devices

    device = devices.choose_device(args.device)
    devices.configure(device, args.threads)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = tt.Clock("wall", args.threads)
    peak, peak_work = tt.matmul_job()
    rows = []
    for d_model, n_head in WIDTHS[: args.widths]:
        cfg, separate, together, check = build(d_model, n_head, args.seeds, device)
        difference = check()  # at the seeds' first weights, before either way steps
        if difference > args.tolerance:
            sys.exit(f"error: width {d_model}: the stacked losses and gradients differ from the separate ones by "
                     f"{difference:.3g} (relative); expected at most {args.tolerance}")
        tokens = args.seeds * BATCH * CONTEXT
        jobs = {"separate": (lambda: (separate(), sync()), tokens), "stacked": (lambda: (together(), sync()), tokens),
                "peak": (lambda: (peak(), sync()), peak_work)}
        rates = tt.time_interleaved(jobs, clock, args.repeats, args.rep_seconds)
        flops_per_token = training_flops(cfg, 1)["flops_per_token"]
        row = {"d_model": d_model, "seeds": args.seeds, "max_relative_difference": difference,
               "separate_tokens_per_s": rates["separate"][0], "stacked_tokens_per_s": rates["stacked"][0],
               "peak_flops_per_s": rates["peak"][0], "busy": min(r[1] for r in rates.values())}
        row["speedup"] = row["stacked_tokens_per_s"] / row["separate_tokens_per_s"]
        for way in ("separate", "stacked"):
            row[f"{way}_mfu"] = row[f"{way}_tokens_per_s"] * flops_per_token / row["peak_flops_per_s"]
        rows.append(row)
        print(f"d={d_model:3d}  {args.seeds} seeds  separate {row['separate_tokens_per_s'] / 1e3:6.1f}k tok/s "
              f"(MFU {row['separate_mfu']:.0%})  stacked {row['stacked_tokens_per_s'] / 1e3:6.1f}k tok/s "
              f"(MFU {row['stacked_mfu']:.0%})  stacked / separate {row['speedup']:.2f}x  "
              f"max rel. diff {difference:.1e}  peak {row['peak_flops_per_s'] / 1e9:.0f} GFLOP/s  "
              f"busy {row['busy']:.0%}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as a cell)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds stacked (default 4)")
    parser.add_argument("--widths", type=int, default=len(WIDTHS), help=f"the first this many of {WIDTHS}")
    parser.add_argument("--repeats", type=int, default=5, help="alternating repeats (default 5)")
    parser.add_argument("--rep-seconds", type=float, default=1.0, help="seconds per repeat of each job")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest relative difference of losses and gradients allowed (default 1e-4)")
    parser.add_argument("--quick", action="store_true", help="two widths, 2 seeds, 2 repeats of 0.3 s")
    parser.add_argument("--json", help="write every number to this file")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.widths < 1:
        parser.error(f"--seeds {args.seeds} and --widths {args.widths}: expected at least 1 each")
    if args.quick:
        args.widths, args.seeds, args.repeats, args.rep_seconds = 2, 2, 2, 0.3
    # SDPA's missing batching rule warns once per call site; the rows say what it costs.
    warnings.filterwarnings("ignore", message="There is a performance drop")
    rows = measure(args)
    if args.json:
        from workflow_scripts.io import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, "device": args.device, "threads": args.threads})


if __name__ == "__main__":
    main()
