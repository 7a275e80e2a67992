"""The Monitor's per-step rows: kept on the device while pending, then moved to its History in one transfer.

The newest row can be reopened (made pending again) so that gradient-accumulation micro-batches, or a loss
that arrives after the gradients, can still be merged into it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ravine.diagnose._history import History
from ravine.diagnose._updates import UpdateSample

__all__ = ["Row", "RowBuffer", "as_tensor"]


@dataclass
class Row:
    """One optimizer step, still on the device."""

    step: int
    loss: torch.Tensor | None
    layer_grad: torch.Tensor
    lr: float
    update: UpdateSample | None
    micro_batches: int = 1


def as_tensor(loss: torch.Tensor | float | None) -> torch.Tensor | None:
    """The loss as a detached scalar tensor (no host synchronisation), or None when not given."""
    if loss is None:
        return None
    if isinstance(loss, torch.Tensor):
        value = loss.detach()
        return value if value.numel() == 1 else value.float().mean()
    return torch.tensor(float(loss), dtype=torch.float64)


class RowBuffer:
    """The rows of one Monitor not yet in its History, and their flush into it.

    Args:
        history: The History that flushed rows are appended to.

    Attributes:
        pending: Rows still on the device, oldest first.
        flushed_last: The newest row flushed so far (None before the first flush).
        weight_norm: ‖θ‖ at the latest sampled weight norm (NaN before the first).
    """

    def __init__(self, history: History) -> None:
        self.history = history
        self.pending: list[Row] = []
        self.flushed_last: Row | None = None
        self.weight_norm = math.nan

    def reopen_last(self) -> bool:
        """Make the newest row pending again (if it was flushed) so it can still change; False if none."""
        if self.pending:
            return True
        last = self.flushed_last
        if last is None or not self.history.steps or self.history.steps[-1] != last.step:
            return False
        self.history.pop()
        self.pending.append(last)
        return True

    def merge_micro_batch(self, layer_grad: torch.Tensor, loss: torch.Tensor | float | None) -> None:
        """Merge a micro-batch into the newest pending row: its gradient norms replace the row's (the
        accumulated gradient), its loss joins the running mean.

        Args:
            layer_grad: Per-layer gradient norms after this micro-batch's backward.
            loss: The micro-batch's loss, or None if not known.
        """
        row = self.pending[-1]
        row.layer_grad = layer_grad
        value = as_tensor(loss)
        row.micro_batches += 1
        if row.loss is None or value is None:
            row.loss = value if row.loss is None else row.loss
        else:
            row.loss = row.loss + (value - row.loss) / row.micro_batches

    def flush(self, *, placement: str, keep_last: bool = False) -> None:
        """Move pending rows to the history (one host transfer).

        Args:
            placement: The Monitor's placement ("before" or "after" ``optimizer.step()``), which decides the
                gradient that made each update.
            keep_last: Leave the newest row pending, since micro-batches may still be merged into it.
        """
        rows = self.pending[:-1] if keep_last else self.pending
        if not rows:
            return
        self.pending = self.pending[-1:] if keep_last else []
        self.flushed_last = rows[-1]
        losses = [math.nan if r.loss is None else r.loss for r in rows]
        tensors = [v.reshape(()).double().cpu() if isinstance(v, torch.Tensor) else None for v in losses]
        present = [t for t in tensors if t is not None]
        loss_values = torch.stack(present).tolist() if present else []
        it = iter(loss_values)
        grads = torch.stack([r.layer_grad.double().cpu() for r in rows]).tolist()
        for row, loss_is, layer_grad in zip(rows, tensors, grads, strict=True):
            # NaN means "not given"; a given loss that was NaN or infinite is kept as +inf.
            loss = math.nan if loss_is is None else next(it)
            if loss_is is not None and not math.isfinite(loss):
                loss = math.inf
            self._append(row, loss, layer_grad, placement)

    def _append(self, row: Row, loss: float, layer_grad: list[float], placement: str) -> None:
        hist = self.history
        columns = hist.columns
        grad_norm = math.sqrt(sum(g * g for g in layer_grad))
        nan = math.nan
        update_norm = cos = distance = eff = ratio = nan
        layer_update = [nan] * len(layer_grad)
        sample = row.update
        if sample is not None:
            layer_update = sample.layer_norms.double().cpu().tolist()
            update_norm = math.sqrt(sum(u * u for u in layer_update))
            if sample.weight_layer_norms is not None:
                weights = sample.weight_layer_norms.double().cpu().tolist()
                self.weight_norm = math.sqrt(sum(w * w for w in weights))
            if sample.distance is not None:
                distance = float(sample.distance)
            previous_update = columns["update_norm"][-1] if hist.steps else nan
            if sample.dot_prev is not None and update_norm > 0 and previous_update > 0:
                # Clamped: on large models the product comes from a sketch (±1/√k).
                cos = max(-1.0, min(1.0, float(sample.dot_prev) / (update_norm * previous_update)))
            # Effective step ‖Δθ‖/‖g‖ with the gradient that made Δθ.
            reference = (
                grad_norm if placement == "after" else (columns["grad_norm"][-1] if hist.steps else nan)
            )
            if reference > 0:
                eff = update_norm / reference
            if self.weight_norm > 0:
                ratio = update_norm / self.weight_norm
        values = {
            "loss": loss,
            "grad_norm": grad_norm,
            "update_norm": update_norm,
            "weight_norm": self.weight_norm,
            "update_ratio": ratio,
            "cos_prev": cos,
            "distance": distance,
            "lr": row.lr,
            "eff_lr": eff,
        }
        hist.append(row.step, values, layer_grad, layer_update)
