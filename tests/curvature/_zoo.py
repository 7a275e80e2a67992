"""The models people train, tiny: attention, RNNs, BatchNorm, Hugging Face GPT-2 / BERT / Llama (random configs).

Each entry builds a float64 model, its loss (None: the model's own ``outputs.loss``), a list of unequal
batches and each batch's weight in the data set's mean; :func:`reference_hvp` is the float64 plain-autograd
double backward (``torch.autograd.grad`` twice, the model's own parameters, no torch.func) of that mean,
with the twice-differentiable kernels chosen here by hand.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

F64 = torch.float64
LossFn = Callable[[Any, Any], Tensor] | None


@dataclass
class Zoo:
    """A model with its loss, its batches and their weights."""

    model: nn.Module
    loss_fn: LossFn
    batches: list[Any]
    weights: list[int]
    loader: Any
    train_mode: bool = False
    hf: bool = False
    upcasts: bool = False  # the model's own loss computes in float32 (a float64 request warns)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.encoder(x).mean(1))
        return out


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(6, 2, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.mha(x, x, x, need_weights=False)[0].mean(1))
        return out


class Recurrent(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        cell = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
        self.rnn = cell(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.rnn(x)[0][:, -1])
        return out


def _tensor_batches(x: Tensor, y: Tensor, sizes: list[int]) -> list[tuple[Tensor, Tensor]]:
    return list(zip(torch.split(x, sizes), torch.split(y, sizes), strict=True))


def _loader(dataset: Any, batch_size: int) -> Any:
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)


def _plain(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn, train_mode: bool = False) -> Zoo:
    sizes = [4, 4, 2]  # the DataLoader's batches (batch_size=4 over 10 rows): unequal
    batches = _tensor_batches(x, y, sizes)
    loader = _loader(torch.utils.data.TensorDataset(x, y), 4)
    return Zoo(model.to(F64), loss_fn, batches, sizes, loader, train_mode=train_mode)


def _hf_batches(vocab: int, *, shift: bool) -> tuple[list[dict[str, Tensor]], list[int], Any]:
    generator = torch.Generator().manual_seed(3)
    rows = []
    for index in range(5):
        ids = torch.randint(0, vocab, (6,), generator=generator)
        labels = ids.clone()
        labels[: index % 3 + (0 if shift else 1)] = -100  # unequal counted targets per row
        rows.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    loader = _loader(rows, 2)  # batches of 2, 2, 1 rows
    batches = list(loader)
    weights = [int(((b["labels"][:, 1:] if shift else b["labels"]) != -100).sum()) for b in batches]
    return batches, weights, loader


def build(name: str) -> Zoo:
    """A fresh, seeded zoo entry by name (see :data:`NAMES`)."""
    torch.manual_seed(11)
    generator = torch.Generator().manual_seed(5)
    mse, ce = nn.functional.mse_loss, nn.functional.cross_entropy
    if name == "transformer-encoder":
        x, y = torch.randn(10, 5, 8, generator=generator), torch.randn(10, 2, generator=generator)
        return _plain(Encoder(), x, y, mse)
    if name == "multihead-attention":
        x, y = torch.randn(10, 4, 6, generator=generator), torch.randint(0, 3, (10,), generator=generator)
        return _plain(Attention(), x, y, ce)
    if name in ("lstm", "gru", "rnn"):
        x, y = torch.randn(10, 5, 3, generator=generator), torch.randn(10, 2, generator=generator)
        return _plain(Recurrent(name), x, y, mse)
    if name in ("cnn-batchnorm-eval", "cnn-batchnorm-train"):
        model = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(8, 3),
        )  # fmt: skip
        norm = model[1]
        assert (
            isinstance(norm, nn.BatchNorm2d)
            and norm.running_mean is not None
            and norm.running_var is not None
        )
        with torch.no_grad():  # running statistics away from (0, 1), so eval mode differs from train mode
            norm.running_mean.fill_(0.3)
            norm.running_var.fill_(2.0)
        x, y = torch.randn(10, 1, 4, 4, generator=generator), torch.randint(0, 3, (10,), generator=generator)
        return _plain(model, x, y, ce, train_mode=name.endswith("train"))
    import transformers

    vocab = 24
    if name == "hf-gpt2":
        config: Any = transformers.GPT2Config(
            n_layer=1, n_embd=8, n_head=2, vocab_size=vocab, n_positions=8, resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
        hf_model: nn.Module = transformers.GPT2LMHeadModel(config)
        shift, upcasts = True, True
    elif name == "hf-bert":
        config = transformers.BertConfig(
            num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=12, vocab_size=vocab,
            max_position_embeddings=8, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
            pad_token_id=0,
        )  # fmt: skip
        hf_model = transformers.BertForMaskedLM(config)
        shift, upcasts = False, False
    elif name == "hf-llama":
        config = transformers.LlamaConfig(
            num_hidden_layers=1, hidden_size=8, num_attention_heads=2, num_key_value_heads=1,
            intermediate_size=12, vocab_size=vocab, max_position_embeddings=8, bos_token_id=0, eos_token_id=0,
            pad_token_id=None,
        )  # fmt: skip
        hf_model = transformers.LlamaForCausalLM(config)
        shift, upcasts = True, True
    else:  # pragma: no cover
        raise KeyError(name)
    batches, weights, loader = _hf_batches(vocab, shift=shift)
    return Zoo(hf_model.to(F64), None, batches, weights, loader, hf=True, upcasts=upcasts)


NAMES = (
    "transformer-encoder",
    "multihead-attention",
    "lstm",
    "gru",
    "rnn",
    "cnn-batchnorm-eval",
    "cnn-batchnorm-train",
    "hf-gpt2",
    "hf-bert",
    "hf-llama",
)


@contextlib.contextmanager
def plain_kernels() -> Iterator[None]:
    """Twice-differentiable kernels for the reference, chosen here with torch's own switches."""
    saved = torch.backends.mha.get_fastpath_enabled(), torch.backends.mkldnn.enabled
    torch.backends.mha.set_fastpath_enabled(False)
    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(saved[0])
        torch.backends.mkldnn.enabled = saved[1]


def _batch_loss(zoo: Zoo, model: nn.Module, batch: Any, float64_loss: bool = False) -> Tensor:
    if zoo.hf and float64_loss:  # the model's token-mean cross-entropy, by hand, without its float32 upcast
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"]
        if zoo.upcasts:  # the causal models: logits at t predict the token at t + 1
            logits, labels = logits[:, :-1], labels[:, 1:]
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    if zoo.hf:
        loss: Tensor = model(**batch).loss
        return loss
    x, y = batch
    assert zoo.loss_fn is not None
    return zoo.loss_fn(model(x.to(F64)), y.to(F64) if y.is_floating_point() else y)


class Reference:
    """The float64 mean loss of a zoo entry and its derivatives by plain autograd (a copy of the model)."""

    def __init__(self, zoo: Zoo, *, float64_loss: bool = False) -> None:
        self.zoo = zoo
        self.float64_loss = float64_loss
        self.model = copy.deepcopy(zoo.model).to(F64)
        self.model.train(zoo.train_mode)
        if zoo.train_mode:  # batch statistics, running ones untouched (as ravine does)
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.track_running_stats = False
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # padding rows of embeddings are frozen parameters (ravine's documented semantics): P H P
        keep = []
        padding = {
            id(m.weight): m.padding_idx
            for m in self.model.modules()
            if isinstance(m, nn.Embedding) and m.padding_idx is not None
        }
        for p in self.params:
            mask = torch.ones_like(p, dtype=torch.bool)
            if id(p) in padding:
                mask[padding[id(p)]] = False
            keep.append(mask.reshape(-1))
        self.keep = torch.cat(keep).to(F64)
        self._gradient_graph: Tensor | None = None  # the flat gradient with its graph, reused by hvp()

    def _mean_loss(self) -> Tensor:
        total = sum(
            w * _batch_loss(self.zoo, self.model, b)
            for b, w in zip(self.zoo.batches, self.zoo.weights, strict=True)
        )
        assert isinstance(total, Tensor)
        return total / sum(self.zoo.weights)

    def gradient(self, theta: Tensor | None = None) -> Tensor:
        with plain_kernels(), self._at(theta):
            g = torch.autograd.grad(self._mean_loss(), self.params)
        return torch.cat([t.reshape(-1) for t in g])

    def hvp(self, v: Tensor) -> Tensor:
        """H v: the gradient's graph (built once, by ``create_graph``) differentiated again along v."""
        with plain_kernels():
            if self._gradient_graph is None:
                g = torch.autograd.grad(self._mean_loss(), self.params, create_graph=True)
                self._gradient_graph = torch.cat([t.reshape(-1) for t in g])
            flat = self._gradient_graph
            hv = torch.autograd.grad(flat @ (v.to(F64) * self.keep), self.params, retain_graph=True)
        return torch.cat([t.reshape(-1) for t in hv]) * self.keep

    @contextlib.contextmanager
    def _at(self, theta: Tensor | None) -> Iterator[None]:
        if theta is None:
            yield
            return
        self._gradient_graph = None  # its saved tensors are the parameters, about to change in place
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta, self.params)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(self.params, saved, strict=True):
                    p.copy_(value)

    def central_difference(self, v: Tensor, step: float = 1e-5) -> Tensor:
        theta = torch.nn.utils.parameters_to_vector(self.params).detach()
        u = v * self.keep
        return (self.gradient(theta + step * u) - self.gradient(theta - step * u)) * self.keep / (2 * step)
