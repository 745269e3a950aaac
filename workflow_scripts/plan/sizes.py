"""Size arithmetic of a model and its peak learning rate, torch-free: one definition each.

The grid (``workflow_scripts.plan.grid``: D = C / (6 N) of an IsoFLOP cell), the scheduler
estimates (``workflow_scripts.plan.resources``) and the model itself
(``workflow_scripts.models.transformer.count_parameters``, checked against
``sum(p.numel())`` in the tests) all count parameters here, so the N a cell is planned
with is the N its metrics report.
"""

from __future__ import annotations

import json


def mlp_width(model: dict, d_model: int) -> int:
    """A transformer's MLP hidden width d_ff: ``model.d_ff_ratio`` × d_model, rounded."""
    return int(round(model["d_ff_ratio"] * d_model))


def gpt_parameters(n_layer: int, d_model: int, d_ff: int, vocab: int, context: int, tied: bool) -> dict[str, int]:
    """Parameter counts of the GPT of ``workflow_scripts.models.transformer`` (no biases).

    ``N_nonembedding`` follows Kaplan et al. (2020, sec. 2.1): "excluding all vocabulary and
    positional embeddings". A tied head is the token embedding, so it is not counted twice.
    An untied head (the unembedding) is a vocabulary matrix too: Kaplan's models tie it (their
    table 1 gives the de-embedding FLOPs but no parameters), and it stays out of
    ``N_nonembedding`` so that tying does not change the N the laws are fitted on; ``N``, every
    trained weight, includes it. ``N_head`` says how many weights the untied head adds.
    """
    per_block = 4 * d_model * d_model + 2 * d_model * d_ff + 2 * d_model  # qkv, proj, mlp, two LayerNorm gains
    non_embedding = n_layer * per_block + d_model  # + final LayerNorm gain
    embedding = (vocab + context) * d_model  # tokens and positions
    head = 0 if tied else vocab * d_model
    return {"N": non_embedding + embedding + head, "N_nonembedding": non_embedding, "N_head": head}


def nonembedding_parameters(n_layer: int, d_model: int, d_ff: int) -> int:
    """Kaplan's N without embeddings (it does not depend on the vocabulary, unknown before tokenizing)."""
    return gpt_parameters(n_layer, d_model, d_ff, vocab=0, context=0, tied=True)["N_nonembedding"]


# Peak-rate multipliers by width, relative to the rate at lr_base_width. Adam's update size does
# not shrink with fan-in, so wider matrices need smaller rates: 1/sqrt(fan-in) is the common
# heuristic; muP (Yang et al. 2022, Tensor Programs V, table 3) scales hidden matrices by 1/fan-in.
LR_RULES = {
    "constant": lambda ratio: 1.0,
    "inverse_sqrt_fan_in": lambda ratio: ratio**0.5,
    "mup": lambda ratio: ratio,
}


def size_learning_rate(training: dict, width: int, own_lr: float | None = None) -> float:
    """Peak learning rate of a size of ``width``: its own ``lr`` if it has one, else ``training.lr_rule``."""
    if own_lr is not None:
        return own_lr
    rule = training["lr_rule"]
    if rule not in LR_RULES:  # the schema's enum stops this first inside the workflow
        raise ValueError(f"training.lr_rule = {json.dumps(rule)}: expected one of {sorted(LR_RULES)}")
    return training["lr"] * LR_RULES[rule](training["lr_base_width"] / width)
