"""The flags of a cell's training, one dataclass each: ``CellFlags`` shared, ``TrainConfig`` for
token cells (``workflow_scripts.train.token_cell``), ``SamplesConfig`` for mlp and cnn cells
(``workflow_scripts.train.samples_cell``).

``SamplesConfig`` redeclares some shared flags: the same flags, with the defaults of plain Adam
at a constant rate.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields

from workflow_scripts.models.transformer import GPTConfig
from workflow_scripts.train.schedule import Schedule, make_schedule


def flag(default, help: str):
    """A dataclass field that ``parse_flags`` turns into ``--<name>`` with this default and help."""
    return field(default=default, metadata={"help": help})


@dataclass
class CellFlags:
    """The flags every training entry point shares (identity, optimiser, schedule, device, checkpoints)."""

    metrics: str = flag("metrics.json", "where to write the cell's metrics")
    curve: str = flag("curve.csv", "where to write the learning curve")
    experiment: str = flag("", "experiment name, recorded in the metrics")
    model_name: str = flag("", "model-size name, recorded in the metrics")
    data_name: str = flag("", "data-size name, recorded in the metrics")
    setting: str = flag("", "the cell's setting of its experiment's training.sweep (e.g. lr=x2,beta2=0.99), "
                             "recorded in the metrics with the values it set; empty for none")
    dropout: float = flag(0.0, "dropout probability")
    epochs: int = flag(1, "passes over the D tokens or samples")
    lr: float = flag(3e-3, "peak learning rate")
    schedule: str = flag("cosine", "learning-rate schedule after warmup: cosine, wsd (warmup-stable-decay) or constant")
    min_lr_ratio: float = flag(0.1, "final learning rate as a fraction of the peak")
    warmup_frac: float = flag(0.05, "fraction of the steps spent in linear warmup (when warmup-steps is 0)")
    warmup_steps: int = flag(0, "linear warmup steps whatever the cell's length; 0 uses warmup-frac")
    cooldown_frac: float = flag(0.2, "wsd: fraction of the steps spent in the (1 - sqrt) cooldown")
    weight_decay: float = flag(0.1, "AdamW decoupled weight decay on matrices")
    beta1: float = flag(0.9, "AdamW beta1")
    beta2: float = flag(0.95, "AdamW beta2")
    grad_clip: float = flag(1.0, "gradient-norm clip; 0 disables")
    eval_points: int = flag(8, "log-spaced evaluations along the run (learning curve)")
    seed: int = flag(0, "seed for initialisation, data order and dropout")
    threads: int = flag(1, "torch CPU threads")
    device: str = flag("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    gpus: int = flag(0, "GPUs to claim on a shared machine before CUDA starts (workflow_scripts.train.gpu_slots); 0 claims none")
    precision: str = flag("auto", "auto (bf16 on CUDA, fp32 elsewhere), fp32 or bf16 autocast")
    checkpoint: str = flag("", "checkpoint file; empty means <metrics stem>.checkpoint.pt beside the metrics")
    checkpoint_every_steps: int = flag(0, "also checkpoint every this many steps; 0 disables")
    checkpoint_every_s: float = flag(60.0, "checkpoint after this many seconds of wall time; 0 disables")

    def schedule_for(self, steps: int) -> Schedule:
        return make_schedule(self.schedule, steps, self.lr, self.min_lr_ratio, self.warmup_frac,
                             self.warmup_steps, self.cooldown_frac)

    def identity(self, status: str) -> dict:
        """The first keys of every metrics.json: which cell this is, and how it ended; a swept cell's
        setting and the values it trains with (``sweep.lr`` the peak rate, whether multiplied or set)."""
        cell = {"schema_version": 1, "experiment": self.experiment, "model": self.model_name,
                "data": self.data_name, "seed": self.seed, "status": status}
        if self.setting:
            keys = [pair.partition("=")[0] for pair in self.setting.split(",")]
            cell.update(setting=self.setting, sweep={key: getattr(self, key) for key in keys})
        return cell


@dataclass
class TrainConfig(CellFlags):
    """A token cell's flags (``python -m workflow_scripts.train.token_cell``)."""

    train_tokens: str = flag("", "training token file (.bin with its .json meta beside it)")
    val_tokens: str = flag("", "validation token file")
    test_tokens: str = flag("", "test token file, evaluated at the end (test_loss); empty for none")
    transfer_tokens: str = flag("", "transfer token file (another dataset's test split in this tokenizer), "
                                     "evaluated at every evaluation point (transfer_loss); empty for none")
    transfer_name: str = flag("", "name of the transfer dataset, recorded as transfer_dataset")
    n_layer: int = flag(2, "transformer blocks")
    d_model: int = flag(32, "residual stream width")
    n_head: int = flag(2, "attention heads (must divide d_model)")
    d_ff: int = flag(0, "MLP hidden width; 0 means 4 × d_model")
    context: int = flag(64, "tokens per training window")
    tied_embeddings: bool = flag(True, "true: the output head is the token embedding (GPT-2); false: a head of its own")
    tokens: int = flag(65536, "token budget D: the cell trains on the first D tokens of the stream")
    compute_budget: float = flag(0.0, "IsoFLOP budget C of the cell, recorded as C_budget; 0 for none")
    batch_size: int = flag(16, "windows per optimiser step")
    eval_tokens: int = flag(16384, "tokens in each fixed evaluation sample (validation, test, transfer)")
    compile: bool = flag(False, "torch.compile the training step's model (inductor; compiled kernels are cached "
                                 "in TORCHINDUCTOR_CACHE_DIR, so only a machine's first cell of a shape pays the compile)")
    noise_scale: bool = flag(False, "measure the gradient noise scale B_simple at every evaluation point "
                                     "(curve column noise_scale; workflow_scripts.train.noise_scale)")
    branch_from: str = flag("", "wsd: start from this branch checkpoint of a stable phase (train the cooldown)")
    branch_tokens: str = flag("", "wsd stable phase: comma-separated budgets (the largest is --tokens) to branch")
    branch_dir: str = flag("", "wsd stable phase: folder of the branch checkpoints, <tokens>.pt each")

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            context=self.context,
            n_layer=self.n_layer,
            d_model=self.d_model,
            n_head=self.n_head,
            d_ff=self.d_ff or 4 * self.d_model,
            dropout=self.dropout,
            tied_embeddings=self.tied_embeddings,
        )


@dataclass
class SamplesConfig(CellFlags):
    """An mlp or cnn cell's flags: the shared ones (defaults of plain Adam at a constant rate) and its own."""

    data: str = flag("", "samples folder holding {train,val,test}.{x,y}.npy and .json meta")
    family: str = flag("mlp", "model family: mlp or cnn (workflow_scripts.models.families)")
    n_layer: int = flag(2, "hidden layers (mlp) or conv blocks (cnn)")
    width: int = flag(32, "hidden width (mlp) or channels of the first conv block, doubling per block (cnn)")
    activation: str = flag("relu", "activation: tanh, relu or gelu")
    samples: int = flag(1024, "sample budget D: the first D training samples of the seed's permutation")
    batch_size: int = flag(64, "samples per optimiser step; 0 means full batch (all D)")
    lr: float = flag(1e-3, "peak learning rate")
    schedule: str = flag("constant", "learning-rate schedule after warmup: constant, cosine or wsd")
    warmup_frac: float = flag(0.0, "fraction of the steps spent in linear warmup (when warmup-steps is 0)")
    weight_decay: float = flag(0.0, "AdamW decoupled weight decay on weight matrices and kernels; 0 is Adam")
    beta2: float = flag(0.999, "Adam beta2")
    grad_clip: float = flag(0.0, "gradient-norm clip; 0 disables")

    def batch(self) -> int:
        return self.samples if self.batch_size == 0 else min(self.batch_size, self.samples)

    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.batch())

    def samples_seen(self, step: int) -> int:
        """Samples consumed by the first ``step`` steps (the last batch of an epoch may be short)."""
        epochs, within = divmod(step, self.steps_per_epoch())
        return epochs * self.samples + min(within * self.batch(), self.samples)


def parse_bool(text: str) -> bool:
    """``true``/``false`` (any case, as Snakemake's flags write Python's True/False), ``1``/``0``, ``yes``/``no``."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected true or false")
    return value


def parse_flags(cls, argv: list[str] | None, description: str):
    """An argparse parser built from the dataclass ``cls`` (one ``--flag`` per field), applied to ``argv``."""
    parser = argparse.ArgumentParser(description=description)
    for f in fields(cls):
        kind = parse_bool if isinstance(f.default, bool) else type(f.default)
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=kind, default=f.default,
            help=f"{f.metadata['help']} (default: {str(f.default).lower() if kind is parse_bool else f.default})",
        )
    return cls(**vars(parser.parse_args(argv)))
