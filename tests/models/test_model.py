import math
from dataclasses import replace

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from workflow_scripts.models.transformer import GPT, GPTConfig, count_parameters, forward_flops_per_token, training_flops
from workflow_scripts.train.schedule import eval_steps, lr_at

SHAPES = [
    GPTConfig(vocab_size=50, context=16, n_layer=1, d_model=8, n_head=2, d_ff=32),
    GPTConfig(vocab_size=65, context=64, n_layer=2, d_model=32, n_head=4, d_ff=128),
    GPTConfig(vocab_size=512, context=128, n_layer=3, d_model=48, n_head=3, d_ff=100),
]


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("cfg", SHAPES, ids=lambda c: f"L{c.n_layer}-d{c.d_model}-V{c.vocab_size}")
def test_analytic_parameter_count_equals_numel(cfg, tied):
    cfg = replace(cfg, tied_embeddings=tied)
    model = GPT(cfg)
    counts = count_parameters(cfg)
    assert counts["N"] == sum(p.numel() for p in model.parameters())  # a tied head counted once
    vocabulary = model.wte.weight.numel() + model.wpe.weight.numel() + (0 if tied else model.head.weight.numel())
    assert counts["N_nonembedding"] == counts["N"] - vocabulary  # Kaplan: no vocabulary or position matrices
    assert counts["N_head"] == (0 if tied else cfg.vocab_size * cfg.d_model)
    assert (model.head.weight is model.wte.weight) == tied


def test_untied_head_trains_apart_from_the_embedding_with_the_same_flops():
    cfg = replace(SHAPES[1], tied_embeddings=False)
    torch.manual_seed(0)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.context))
    model(idx, idx)[1].backward()
    assert model.head.weight.grad is not None and model.wte.weight.grad is not None
    assert not torch.equal(model.head.weight.grad, model.wte.weight.grad)
    assert forward_flops_per_token(cfg) == forward_flops_per_token(SHAPES[1])  # the head's product runs either way


def test_forward_shapes_and_initial_loss_near_uniform():
    cfg = SHAPES[1]
    torch.manual_seed(0)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (3, cfg.context))
    targets = torch.randint(0, cfg.vocab_size, (3, cfg.context))  # not idx: tied embeddings favour it
    logits, loss = model(idx, targets)
    assert logits.shape == (3, cfg.context, cfg.vocab_size)
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.1


def test_model_is_causal():
    cfg = SHAPES[0]
    model = GPT(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (1, cfg.context))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % cfg.vocab_size
    a, _ = model(idx)
    b, _ = model(changed)
    assert torch.allclose(a[0, :-1], b[0, :-1])  # earlier positions never see later tokens
    assert not torch.allclose(a[0, -1], b[0, -1])


def test_flops_follow_chinchilla_appendix_f_and_approach_6n_for_wide_models():
    cfg = SHAPES[1]
    d, T, V, L, F = cfg.d_model, cfg.context, cfg.vocab_size, cfg.n_layer, cfg.d_ff
    by_hand = 2 * V * d + L * (6 * d * d + 2 * T * d + 3 * cfg.n_head * T + 2 * T * d + 2 * d * d + 4 * d * F) + 2 * d * V
    assert forward_flops_per_token(cfg) == by_hand
    wide = GPTConfig(vocab_size=64, context=32, n_layer=4, d_model=1024, n_head=8, d_ff=4096)
    c = training_flops(wide, tokens=1000)
    assert c["C"] == pytest.approx(c["C_6ND"], rel=0.02)  # attention and embeddings are small here


def test_bad_head_count_is_one_clear_error():
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_head=4"):
        GPTConfig(vocab_size=10, d_model=30, n_head=4)


def test_learning_rate_schedule_warms_up_then_decays_to_floor():
    lrs = [lr_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone cosine decay
    assert lrs[-1] == pytest.approx(0.1)


def test_eval_steps_are_log_spaced_and_include_both_ends():
    steps = eval_steps(1000, 8)
    assert steps[0] == 0 and steps[-1] == 1000 and steps[1] == 1
    gaps = [b / a for a, b in zip(steps[1:], steps[2:])]
    assert max(gaps) / min(gaps) < 1.5


# Shapes for the FLOP check: attention-heavy (long context, narrow), MLP-heavy, vocabulary-heavy, odd d_ff.
FLOP_SHAPES = SHAPES + [
    GPTConfig(vocab_size=17, context=256, n_layer=2, d_model=16, n_head=4, d_ff=64),
    GPTConfig(vocab_size=300, context=16, n_layer=1, d_model=16, n_head=2, d_ff=64, tied_embeddings=False),
    GPTConfig(vocab_size=1000, context=8, n_layer=1, d_model=24, n_head=1, d_ff=96),
]


@pytest.mark.parametrize("cfg", FLOP_SHAPES, ids=lambda c: f"L{c.n_layer}-d{c.d_model}-h{c.n_head}-T{c.context}-V{c.vocab_size}")
def test_flop_accounting_matches_torch_flop_counter(cfg):
    """``forward_flops_per_token`` against ``torch.utils.flop_counter.FlopCounterMode``, exactly.

    FlopCounterMode counts 2·m·n·k per matrix product and nothing else. Attention
    runs through the math backend so that its two products (q·kᵀ and scores·v)
    are visible as bmm calls; the fused CPU kernel is not counted by the counter
    at all. Neither side discounts the causal mask. The accounting of Hoffmann
    et al. (2022, appendix F) adds two terms that are not matrix products: the
    embedding lookup counted as a one-hot product (2·V·d per token) and the
    softmax (3·H·T per layer per token). With those two removed, the counts must
    agree to the FLOP: both are integers, so the tolerance is zero. A training
    step (forward and backward) must then count exactly 3× the forward
    products, which is the ``C = 3 × forward`` of ``training_flops``.
    """
    torch.manual_seed(0)
    model = GPT(cfg)
    B, T = 2, cfg.context
    idx = torch.randint(0, cfg.vocab_size, (B, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as forward:
        _, loss = model(idx, idx)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as step:
        _, loss = model(idx, idx)
        loss.backward()
    not_products = 2 * cfg.vocab_size * cfg.d_model + cfg.n_layer * 3 * cfg.n_head * T
    assert forward.get_total_flops() == (forward_flops_per_token(cfg) - not_products) * B * T
    assert step.get_total_flops() == 3 * forward.get_total_flops()
    per_token = training_flops(cfg, 1)["flops_per_token"]
    assert per_token == 3 * forward_flops_per_token(cfg)
