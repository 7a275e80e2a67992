"""End to end, every preset trains an MLP exactly as its torch.optim counterpart does (float64, same batches).

tests/optim checks each preset step by step over a grid of hyper-parameters; this is the whole-training view:
after many updates of a real net, the parameters of the two runs agree to float64 round-off.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import ravine.optim as ravine_optim

TORCH_TWIN: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "radam": ("RAdam", {}),
}


def torch_parity(name: str, twin: tuple[str, dict[str, Any]], *, steps: int, lr: float = 1e-2) -> float:
    """max |θ_ravine − θ_torch| / max |θ_torch| after ``steps`` updates of the same float64 MLP and batches."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps, 32, 8, generator=generator, dtype=torch.float64)
    y = torch.randn(steps, 32, 1, generator=generator, dtype=torch.float64)
    torch.manual_seed(0)
    template = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    finals = []
    torch_name, extra = twin
    for use_ravine in (True, False):
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        model.load_state_dict(template.state_dict())
        if use_ravine:
            optimizer = getattr(ravine_optim, name)(model.parameters(), lr=lr)
        else:
            optimizer = getattr(torch.optim, torch_name)(model.parameters(), lr=lr, **extra)
        for step in range(steps):
            optimizer.zero_grad()
            torch.autograd.backward(torch.nn.functional.mse_loss(model(x[step]), y[step]))
            optimizer.step()
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return float((finals[0] - finals[1]).abs().max() / finals[1].abs().max())


@pytest.mark.parametrize("preset", list(TORCH_TWIN))
def test_parity_with_torch_optim_is_float64_round_off(preset: str) -> None:
    assert torch_parity(preset, TORCH_TWIN[preset], steps=100) <= 1e-12


def test_parity_detects_a_different_rule() -> None:
    # ravine's Adagrad (torch's root-sum-square) against torch's RMSprop must not agree.
    assert torch_parity("adagrad", ("RMSprop", {}), steps=50) > 1e-3
