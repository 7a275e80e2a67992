"""Defined semantics for the awkward cases: Hugging Face batch forms and token weights, padding rows, sparse
embeddings, summed losses, name patterns and the finite-difference product."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import Tensor, nn

from ravine.curvature import HessianOperator
from ravine.errors import ConfigError, CurvatureError, DataError, UnsupportedError

from ._helpers import F64, problem, relative_error, split
from ._zoo import build


def _concatenate(batches: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


@pytest.mark.filterwarnings("ignore:curvature. dtype=torch.float64 was asked for")  # GPT-2's float32 loss
@pytest.mark.parametrize("name", ["hf-gpt2", "hf-bert"])
def test_hf_batch_forms_agree_and_tokens_weight_the_mean(name: str) -> None:
    zoo = build(name)
    batches = zoo.batches
    n = sum(p.numel() for p in zoo.model.parameters())
    V = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    # one batch holding every row: the token mean over the whole data set, the truth for any split
    whole = HessianOperator(zoo.model, data=_concatenate(batches), cache=False) @ V
    pairs = [({k: t for k, t in b.items() if k != "labels"}, b["labels"]) for b in batches]
    for data in (batches, zoo.loader, pairs):
        for cache in (True, False):
            H = HessianOperator(zoo.model, data=data, cache=cache)
            assert relative_error(H @ V, whole) < 1e-6
            assert H.num_samples == sum(zoo.weights)  # counted targets, after the causal shift for GPT-2
    if name == "hf-bert":  # a loss_fn on (dict, labels) with targets counted: the same operator

        def token_ce(outputs: object, labels: Tensor) -> Tensor:
            logits = outputs.logits  # type: ignore[attr-defined]
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

        H = HessianOperator(zoo.model, token_ce, pairs, weighting="targets")
        assert relative_error(H @ V, whole) < 1e-10
        by_rows = HessianOperator(zoo.model, token_ce, pairs, weighting="samples")
        assert relative_error(by_rows @ V, whole) > 1e-3  # rows are the wrong weights for a token mean


def test_hf_batch_errors_name_the_fix() -> None:
    zoo = build("hf-bert")
    unlabeled = [{k: t for k, t in b.items() if k != "labels"} for b in zoo.batches]
    with pytest.raises(DataError, match=r"dict batch 0 has no 'labels' tensor .*batch\['labels'\]"):
        HessianOperator(zoo.model, data=unlabeled).loss()
    plain = nn.Linear(3, 1).to(F64)
    x, y = torch.randn(4, 3, dtype=F64), torch.randn(4, 1, dtype=F64)
    with pytest.raises(CurvatureError, match="this model takes no labels; pass loss_fn="):
        HessianOperator(plain, data=[(x, y)]).loss()
    with pytest.raises(DataError, match="data is None"):
        HessianOperator(plain, nn.functional.mse_loss)


class _Tokens(nn.Module):
    def __init__(self, sparse: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(6, 3, padding_idx=0, sparse=sparse)
        self.head = nn.Linear(3, 2)

    def forward(self, ids: Tensor) -> Tensor:
        out: Tensor = self.head(torch.tanh(self.embed(ids)).mean(1))
        return out


def test_padding_rows_are_frozen_parameters() -> None:
    torch.manual_seed(0)
    model = _Tokens().to(F64)
    ids = torch.tensor([[0, 1, 2], [3, 0, 4], [5, 5, 0], [1, 2, 3]])
    y = torch.randn(4, 2, dtype=F64)
    dense = {
        cache: HessianOperator(model, nn.functional.mse_loss, [(ids, y)], cache=cache).dense()
        for cache in (True, False)
    }
    assert float((dense[True] - dense[False]).abs().max()) < 1e-12  # the same operator on both paths
    assert float((dense[True] - dense[True].T).abs().max()) < 1e-12  # symmetric before dense() symmetrises
    assert not bool(dense[True][:3].any()) and not bool(dense[True][:, :3].any())  # row 0: 3 frozen entries
    assert bool(dense[True][3:6, 3:6].any())


def test_sparse_embeddings_are_refused_at_construction() -> None:
    model = _Tokens(sparse=True)
    with pytest.raises(
        UnsupportedError, match=r"\['embed.weight'\] were built with sparse=True.*sparse=False"
    ):
        HessianOperator(
            model, nn.functional.mse_loss, (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2))
        )
    HessianOperator(
        model,
        nn.functional.mse_loss,
        (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 2)),
        params=["head.*"],
    )


def test_summed_losses_need_the_explicit_option() -> None:
    p = problem("mlp-ce")
    batches = split(p.x, p.y, [10, 20, 6])
    for loss in (
        nn.CrossEntropyLoss(reduction="sum"),
        functools.partial(nn.functional.cross_entropy, reduction="sum"),
    ):
        with pytest.raises(ConfigError, match=r"declares reduction='sum' .* pass reduction='sum'"):
            HessianOperator(p.model, loss, batches)
        H = HessianOperator(p.model, loss, batches, reduction="sum")
        assert relative_error(H.dense(), p.hessian * p.x.shape[0]) < 1e-10  # the Hessian of the total
    with pytest.raises(ConfigError, match=r"reduction='none'.*must be a scalar"):
        HessianOperator(p.model, nn.CrossEntropyLoss(reduction="none"), batches)


def test_parameter_name_patterns() -> None:
    zoo = build("hf-gpt2")
    H = HessianOperator(zoo.model, data=zoo.batches, params=["transformer.h.*.attn.*"])
    assert H.parameter_names and all(".attn." in name for name in H.parameter_names)
    assert H.shape[0] == sum(zoo.model.get_parameter(name).numel() for name in H.parameter_names)
    with pytest.raises(ConfigError, match=r"pattern 'transformer.h.\*.nothing' matches no parameter"):
        HessianOperator(zoo.model, data=zoo.batches, params=["transformer.h.*.nothing"])


@pytest.mark.parametrize(("dtype", "tolerance"), [(F64, 1e-8), (torch.float32, 1e-3)])
def test_finite_difference_products_within_their_stated_error(dtype: torch.dtype, tolerance: float) -> None:
    p = problem("mlp-ce")
    model = p.model if dtype == F64 else build_copy(p.model, dtype)
    H = HessianOperator(model, p.loss_fn, split(p.x, p.y, [10, 26]), hvp="finite-difference")
    V = torch.randn(H.shape[0], 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    assert relative_error((H @ V.to(dtype)).to(F64), p.hessian @ V) < tolerance
    assert H.finite_difference_step == pytest.approx(torch.finfo(dtype).eps ** (1 / 3), rel=1.0)
    with pytest.raises(ConfigError, match="hvp must be 'autograd' or 'finite-difference'"):
        HessianOperator(model, p.loss_fn, (p.x, p.y), hvp="fd")  # type: ignore[arg-type]


def build_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(dtype)


def test_torch_errors_are_explained_with_cause_and_fix() -> None:
    from torch.func import grad, jvp

    from ravine.curvature._forward_ad import load_forward_ad
    from ravine.curvature._kernels import explain

    load_forward_ad()  # torch's first jvp scripts its decompositions (and warns); ravine keeps that quiet
    q = torch.randn(1, 2, 4, 8)

    def attention(t: Tensor) -> Tensor:
        return nn.functional.scaled_dot_product_attention(t, t, t).sum()

    with pytest.raises(NotImplementedError) as caught:  # torch's own message, outside ravine's kernels
        jvp(grad(attention), (q,), (q,))
    message = explain("Hessian-vector product", 2, caught.value)
    assert (
        "on batch 2" in message and "attention kernel" in message and 'attn_implementation="eager"' in message
    )
    rnn = nn.LSTM(2, 2)
    with pytest.raises(NotImplementedError) as caught:
        jvp(lambda x: rnn(x)[0].sum(), (torch.randn(3, 1, 2),), (torch.randn(3, 1, 2),))
    assert "fused RNN kernel" in explain("Hessian-vector product", 0, caught.value)
