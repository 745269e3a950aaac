"""MLP and CNN families: shapes, closed-form parameter counts and exact forward FLOPs."""

import math

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from workflow_scripts.models.families import (
    ACTIVATIONS, Net, NetConfig, conv_plan, count_parameters, flop_terms, forward_flops_per_sample, training_flops,
    widest_activation,
)

CONFIGS = [
    NetConfig("mlp", [1], 1, n_layer=1, width=2, activation="tanh"),  # the sine blog's smallest
    NetConfig("mlp", [1], 1, n_layer=3, width=64, activation="gelu", dropout=0.1),
    NetConfig("mlp", [40], 10, n_layer=0, width=8),  # linear model
    NetConfig("mlp", [28, 28], 10, n_layer=2, width=32, x_scale=1 / 255),
    NetConfig("cnn", [40], 10, n_layer=4, width=8),  # MNIST-1D: 40 → 20 → 10 → 5 → 2
    NetConfig("cnn", [28, 28], 10, n_layer=2, width=16, dropout=0.25, x_scale=1 / 255),  # the course exercise
    NetConfig("cnn", [28, 28], 10, n_layer=4, width=4, activation="tanh"),
    NetConfig("cnn", [8, 5], 3, n_layer=2, width=3, activation="gelu"),  # rectangular: pools once
    NetConfig("cnn", [1], 1, n_layer=1, width=2),  # never pools
]
IDS = [f"{c.family}-{'x'.join(map(str, c.in_shape))}-L{c.n_layer}-w{c.width}" for c in CONFIGS]


def sample_batch(cfg, batch=3):
    if cfg.x_scale != 1.0:
        return torch.randint(0, 256, (batch, *cfg.in_shape), dtype=torch.uint8)
    return torch.randn(batch, *cfg.in_shape)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_parameter_count_matches_the_module(cfg):
    model = Net(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert count_parameters(cfg) == {"N": n, "N_nonembedding": n}


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_matmul_flops_equal_torchs_flop_counter_and_the_rest_equal_counted_elements(cfg):
    torch.manual_seed(0)
    model = Net(cfg).eval()
    x, batch = sample_batch(cfg, 5), 5
    counted = {"bias": 0, "activation": 0, "pool": 0}
    pool_window = 2 ** len(cfg.in_shape) - 1  # comparisons per pooled element

    def hook(module, args, out):
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            counted["bias"] += out.numel()
        elif isinstance(module, tuple(ACTIVATIONS.values())):
            counted["activation"] += out.numel()
        elif isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
            counted["pool"] += pool_window * out.numel()

    for module in model.modules():
        module.register_forward_hook(hook)
    with FlopCounterMode(display=False) as counter:
        out, _ = model(x)
    assert out.shape == (batch, cfg.n_outputs)
    terms = flop_terms(cfg)
    assert terms["matmul"] * batch == counter.get_total_flops()
    assert {k: terms[k] * batch for k in counted} == counted
    assert forward_flops_per_sample(cfg) == sum(terms.values())
    flops = training_flops(cfg, 7)
    assert flops["C"] == 3 * forward_flops_per_sample(cfg) * 7 and flops["C_6ND"] == 6 * count_parameters(cfg)["N"] * 7


def test_mlp_flops_by_hand():
    # 1 → 2 → 1 with tanh: matmuls 2·(1·2 + 2·1) = 8, bias adds 2 + 1, tanh 2.
    assert flop_terms(NetConfig("mlp", [1], 1, n_layer=1, width=2, activation="tanh")) == {
        "matmul": 8, "bias": 3, "activation": 2, "pool": 0}


def test_pooling_rule_and_shapes():
    # Pool only while every side is >= 4: MNIST 28 → 14 → 7 → 3 → 3; MNIST-1D 40 → 20 → 10 → 5 → 2 → 2.
    mnist = conv_plan(NetConfig("cnn", [28, 28], 10, n_layer=5, width=2))
    assert [(shape, pooled) for _, _, shape, pooled in mnist] == [
        ((28, 28), True), ((14, 14), True), ((7, 7), True), ((3, 3), False), ((3, 3), False)]
    assert [c_out for _, c_out, _, _ in mnist] == [2, 4, 8, 16, 32]  # width · 2^i
    mnist1d = conv_plan(NetConfig("cnn", [40], 10, n_layer=5, width=2))
    assert [shape for _, _, shape, _ in mnist1d] == [(40,), (20,), (10,), (5,), (2,)]
    cfg = NetConfig("cnn", [28, 28], 10, n_layer=2, width=16)
    body = Net(cfg).body(torch.zeros(2, 1, 28, 28))
    assert body.shape == (2, 32 * 7 * 7)  # conv-relu-pool, conv-relu-pool, flatten
    assert widest_activation(cfg) == 16 * 28 * 28


def test_uint8_input_is_scaled():
    cfg = NetConfig("mlp", [4, 4], 3, n_layer=1, width=8, x_scale=1 / 255)
    model = Net(cfg)
    pixels = torch.randint(0, 256, (6, 4, 4), dtype=torch.uint8)
    unscaled = Net(NetConfig("mlp", [4, 4], 3, n_layer=1, width=8))
    unscaled.load_state_dict(model.state_dict())
    assert torch.allclose(model(pixels)[0], unscaled(pixels.float() / 255)[0], atol=1e-6)


def test_losses_are_mse_for_regression_and_cross_entropy_for_classes():
    model = Net(NetConfig("mlp", [2], 4, n_layer=1, width=8))
    x = torch.randn(5, 2)
    out, ce = model(x, torch.tensor([0, 1, 2, 3, 0]))
    assert ce.item() == pytest.approx(nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3, 0])).item())
    reg = Net(NetConfig("mlp", [2], 1, n_layer=1, width=8))
    out, mse = reg(x, torch.zeros(5, 1))
    assert mse.item() == pytest.approx(out.pow(2).mean().item())


@pytest.mark.parametrize("overrides, message", [
    ({"family": "rnn"}, "family 'rnn': expected one of ['mlp', 'cnn']"),
    ({"activation": "swish"}, "activation 'swish': expected one of ['tanh', 'relu', 'gelu']"),
    ({"family": "cnn", "in_shape": [2, 3, 4]}, "in_shape [2, 3, 4]: a cnn expects 1-D [L] or 2-D [H, W] samples"),
    ({"family": "cnn", "n_layer": 0}, "n_layer=0: expected an integer >= 1 for cnn"),
    ({"width": 0}, "width=0: expected a positive integer"),
    ({"dropout": 1.0}, "dropout=1.0: expected a probability in [0, 1)"),
    ({"in_shape": [0]}, "in_shape [0]: expected positive sides"),
])
def test_bad_config_is_one_clear_line(overrides, message):
    settings = {"family": "mlp", "in_shape": [4], "n_outputs": 2, "n_layer": 1, "width": 4} | overrides
    with pytest.raises(ValueError) as error:
        NetConfig(**settings)
    assert str(error.value) == message


def test_config_round_trips_through_its_dict():
    cfg = NetConfig("cnn", [28, 28], 10, n_layer=2, width=16, x_scale=1 / 255)
    record = cfg.to_dict()
    assert record["in_shape"] == [28, 28] and NetConfig(**record) == cfg
    assert math.isclose(record["x_scale"], 1 / 255)
