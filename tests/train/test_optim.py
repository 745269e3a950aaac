"""EagerAdamW: torch.optim.AdamW's numbers without importing torch._dynamo."""

import subprocess
import sys

import torch

from workflow_scripts.train.optim import EagerAdamW


def _train(kind, steps=6, resume_at=3):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.Linear(7, 3))
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = kind(groups, lr=3e-3, betas=(0.9, 0.95))
    x, y = torch.randn(16, 5), torch.randn(16, 3)
    for step in range(steps):
        if step == resume_at:  # a round trip through the state dict, as a checkpoint's resume does
            state = optimizer.state_dict()
            optimizer = kind(groups, lr=3e-3, betas=(0.9, 0.95))
            optimizer.load_state_dict(state)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()], optimizer.state_dict()


def test_eager_adamw_gives_torch_adamw_numbers_bit_for_bit():
    ours, our_state = _train(EagerAdamW)
    theirs, their_state = _train(torch.optim.AdamW)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert our_state["param_groups"] == their_state["param_groups"]
    for i, s in their_state["state"].items():
        assert all(torch.equal(our_state["state"][i][k], v) for k, v in s.items())


def test_eager_adamw_does_not_import_dynamo_and_torch_adamw_does():
    code = ("import sys, torch\n"
            "from workflow_scripts.train.optim import EagerAdamW\n"
            "m = torch.nn.Linear(3, 3)\n"
            "o = {kind}(m.parameters(), lr=0.1)\n"
            "m(torch.ones(1, 3)).sum().backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)\n"
            "o.step(); o.zero_grad(); o.load_state_dict(o.state_dict())\n"
            "print('torch._dynamo' in sys.modules)\n")
    for kind, imported in (("EagerAdamW", "False"), ("torch.optim.AdamW", "True")):
        out = subprocess.run([sys.executable, "-c", code.format(kind=kind)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == imported, kind
