"""A nanoGPT-style decoder-only transformer with exact size and FLOP accounting.

Pre-LayerNorm blocks, causal self-attention through
``scaled_dot_product_attention``, a GELU MLP, learned positions and an output
head tied to the token embedding (or, with ``tied_embeddings=False``, a head
of its own). No biases anywhere, so the parameter count has a short closed
form (checked against ``sum(p.numel())`` in the tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from workflow_scripts.plan.sizes import gpt_parameters


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context: int = 64
    n_layer: int = 2
    d_model: int = 32
    n_head: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    tied_embeddings: bool = True  # the head reuses the token embedding (Press & Wolf 2017), as GPT-2 does

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        for name in ("vocab_size", "context", "n_layer", "d_model", "n_head", "d_ff"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 × (B, T, C)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, n_head, T, head_dim)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=False)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=False)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.head.weight = self.wte.weight  # tied embeddings (Press & Wolf 2017)
        self.apply(self._init_weights)
        # GPT-2 scales residual projections by 1/sqrt(2 n_layer) so the residual
        # stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))  # (B, T, vocab)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def count_parameters(cfg: GPTConfig) -> dict[str, int]:
    """Analytic parameter counts: N, N_nonembedding (Kaplan's N) and N_head (the untied head's weights).

    The closed form is ``workflow_scripts.plan.sizes.gpt_parameters``, which the grid and the
    scheduler estimates use before any model exists.
    """
    return gpt_parameters(cfg.n_layer, cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.context, cfg.tied_embeddings)


def forward_flops_per_token(cfg: GPTConfig) -> float:
    """Forward FLOPs per token, counted as Hoffmann et al. (2022, appendix F).

    A multiply-add is 2 FLOPs. Like Chinchilla, the attention terms use the
    full context length (no discount for the causal mask), and the embedding
    lookup is counted as a one-hot product.
    """
    d, T, V, H = cfg.d_model, cfg.context, cfg.vocab_size, cfg.n_head
    embeddings = 2 * V * d
    attention = (
        2 * 3 * d * d  # key, query and value projections
        + 2 * T * d  # key @ query logits
        + 3 * H * T  # softmax
        + 2 * T * d  # softmax @ values
        + 2 * d * d  # output projection
    )
    dense = 2 * 2 * d * cfg.d_ff
    logits = 2 * d * V
    return float(embeddings + cfg.n_layer * (attention + dense) + logits)


def training_flops(cfg: GPTConfig, tokens: int) -> dict[str, float]:
    """Training compute: 3 × forward (backward ≈ 2 × forward), and Kaplan's 6ND beside it."""
    forward = forward_flops_per_token(cfg)
    n_nonemb = count_parameters(cfg)["N_nonembedding"]
    return {"C": 3.0 * forward * tokens, "C_6ND": 6.0 * n_nonemb * tokens, "flops_per_token": 3.0 * forward}
