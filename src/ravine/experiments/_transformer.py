"""The warmup experiment's tiny Transformer, its synthetic sequence tasks, and the variance of Adam's early
adaptive learning rate over mini-batch streams (RAdam's quantity)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ravine.errors import ConfigError

__all__ = ["TinyTransformer", "adaptive_lr_variance", "make_batch"]


class TinyTransformer(nn.Module):
    """Token embedding + learned positions → post-LN ``nn.TransformerEncoder`` → per-position logits."""

    def __init__(self, vocab: int, length: int, d_model: int, heads: int, layers: int, *, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab, d_model)
            self.position = nn.Parameter(0.1 * torch.randn(length, d_model))
            layer = nn.TransformerEncoderLayer(
                d_model, heads, 2 * d_model, dropout=0.0, batch_first=True, norm_first=False
            )
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, vocab)
        self.scale = math.sqrt(d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, length, vocab)."""
        hidden = self.encoder(self.embed(tokens) * self.scale + self.position)
        return self.head(hidden)  # type: ignore[no-any-return]


def make_batch(
    task: str, size: int, length: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random input sequences and their targets (sorted or reversed).

    Raises:
        ConfigError: If the task is unknown.
    """
    x = torch.randint(0, vocab, (size, length), generator=generator)
    if task == "sort":
        return x, x.sort(dim=1).values
    if task == "reverse":
        return x, x.flip(1)
    raise ConfigError(f"warmup: unknown task {task!r}; choose 'sort' or 'reverse'")


def adaptive_lr_variance(
    model: nn.Module,
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
    *,
    beta2: float,
    steps: int,
    streams: int,
    eps: float = 1e-8,
) -> list[float]:
    """Var over ``streams`` independent mini-batch streams of ln(η/σ_t), for t = 1..``steps``.

    σ_t = sqrt(v̂_t) + ε is Adam's bias-corrected denominator after t gradients, all taken at the model's
    current weights (they are not updated), the mini-batches of stream k drawn as ``batch(generator_k)``
    and the loss being the per-token cross-entropy. The variance is taken per parameter element and the
    median over elements is returned. This is the variance of the adaptive learning rate that RAdam (Liu et
    al., 2020) analyses — over the sampling of gradients at a fixed point — in logs, which stay finite where
    Var[1/σ_t] is infinite (the first updates).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    size = sum(p.numel() for p in params)
    total = torch.zeros(steps, size, dtype=torch.float64)
    squares = torch.zeros_like(total)
    for k in range(streams):
        generator = torch.Generator().manual_seed(20_000 + k)
        v = torch.zeros(size)
        for t in range(1, steps + 1):
            x, y = batch(generator)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            g = torch.cat(
                [
                    (gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                    for gi, p in zip(grads, params, strict=True)
                ]
            )
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            log_rate = -((v / (1.0 - beta2**t)).sqrt() + eps).log().double()
            total[t - 1] += log_rate
            squares[t - 1] += log_rate**2
    variance = (squares - total**2 / streams) / (streams - 1)
    return [float(value) for value in variance.clamp_min(0.0).median(dim=-1).values]
