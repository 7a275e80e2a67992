"""What to try for each verdict, after the lectures."""

from __future__ import annotations

from ravine.diagnose._records import Remedy, VerdictKind

__all__ = ["remedies"]

_REMEDIES: dict[VerdictKind, tuple[Remedy, ...]] = {
    VerdictKind.RAVINE_OSCILLATION: (
        Remedy(
            "lower the learning rate for the steep direction",
            "η·λ along the update is at or above 2: the step jumps across the ravine. Lower η (or decay it), "
            "but a single global η small enough for the steep wall crawls along the flat floor.",
        ),
        Remedy(
            "use a per-parameter adaptive learning rate",
            "θ ← θ − (η/σ)·g with σ the RMS of past gradients (Adagrad, RMSProp, Adam) takes small steps on "
            "the steep axis and large ones on the flat axis.",
        ),
        Remedy(
            "add momentum",
            "Momentum averages out the back-and-forth component and keeps the along-floor one.",
        ),
        Remedy("warm up", "If it started right after a learning-rate increase, warm up to the target rate."),
    ),
    VerdictKind.LR_TOO_SMALL: (
        Remedy(
            "raise the learning rate",
            "The step is far shorter than the 1-D optimum along its own direction and successive steps agree; "
            "raise η (try ×10) and watch the first steps.",
        ),
        Remedy(
            "use an adaptive learning rate or momentum",
            "Adam/RMSProp scale each parameter's step by 1/σ; momentum accumulates consistent directions.",
        ),
    ),
    VerdictKind.SADDLE_POINT: (
        Remedy(
            "step along the escape direction",
            "The Hessian has a negative eigenvalue: a step along its eigenvector u decreases the loss, "
            "L(θ+αu) ≈ L(θ) + ½α²λ_min (ravine.curvature.escape does this with a line search).",
        ),
        Remedy(
            "add momentum or noise", "Momentum and small-batch noise carry the parameters off the saddle."
        ),
        Remedy("use a smaller batch", "Noisier gradients leave saddles sooner."),
    ),
    VerdictKind.LOCAL_MINIMUM_LIKE: (
        Remedy(
            "accept it or change the model",
            "All curvature found is non-negative: this is minimum-like. Local minima are rare in large "
            "networks (the minimum ratio is seldom 1); if the loss is still too high, enlarge the model.",
        ),
        Remedy("restart or use a smaller batch", "A different seed or noisier gradients find other basins."),
        Remedy("decay the learning rate", "If the loss is fine, decay η to settle into the minimum."),
    ),
    VerdictKind.CRITICAL_POINT: (
        Remedy(
            "give the monitor loss_fn and the batch",
            "The gradient is small and the loss flat: a critical point. Pass loss_fn= and monitor.step(loss, "
            "batch=(x, y)) to tell a saddle from a minimum by the Hessian's eigenvalues.",
        ),
    ),
    VerdictKind.DIVERGING: (
        Remedy(
            "lower the learning rate", "Divide η by 10; check the step where the loss first left its range."
        ),
        Remedy("warm up", "Start from a small η and raise it over the first hundreds of steps."),
        Remedy(
            "clip gradients and check the data",
            "Clip the gradient norm (log it before clipping); a NaN loss can come from bad inputs or log(0).",
        ),
    ),
    VerdictKind.NOISE_DOMINATED: (
        Remedy("decay the learning rate", "With noise dominating, a smaller η averages it out."),
        Remedy("use a larger batch", "Noise variance falls as 1/b; the SNR rises with the batch."),
        Remedy("add momentum", "Momentum averages successive noisy gradients."),
    ),
    VerdictKind.ADAPTIVE_LR_BURSTS: (
        Remedy(
            "schedule the learning rate",
            "σ became tiny on a direction where the gradient had vanished, so η/σ exploded; decay η "
            "(e.g. η/√(1+t/1000)) — the lecture's cure.",
        ),
        Remedy("raise eps or use RMSProp/Adam decay", "A larger eps or a forgetting σ bounds η/σ."),
        Remedy("warm up", "A warmup lets σ's statistics settle before large steps are taken."),
    ),
    VerdictKind.DIVERGED_STUCK: (
        Remedy(
            "restart from a checkpoint with a lower learning rate",
            "The loss jumped far above its best and stays there: the weights left the basin (often units "
            "died or an adaptive σ was reset by a huge gradient). Reload the last good checkpoint, divide η by "
            "10, add warmup and gradient clipping.",
        ),
        Remedy("find the rate with an LR range test", "ravine.diagnose.lr_range_test sweeps η on a copy."),
    ),
    VerdictKind.DEAD_UNITS: (
        Remedy(
            "restart with a lower learning rate or warmup",
            "The network predicts one output for every input and its units pass no gradient (dead ReLUs or "
            "saturated tanh/sigmoid): this is not a minimum worth keeping. A too-large step pushed the "
            "pre-activations out of range; restart (or reload) with η÷10 and warmup.",
        ),
        Remedy(
            "change the activation, initialisation or normalisation",
            "LeakyReLU/GELU keep a gradient below zero; He/Kaiming initialisation and BatchNorm/LayerNorm keep "
            "pre-activations centred.",
        ),
    ),
    VerdictKind.GRADIENT_DEPTH: (
        Remedy(
            "normalise and add skip connections",
            "The relative gradient shrinks (or grows) layer by layer: residual connections and "
            "BatchNorm/LayerNorm keep it at one scale through depth.",
        ),
        Remedy(
            "fix the initialisation and activations",
            "Variance-preserving initialisation (He for ReLU, Xavier for tanh) and non-saturating activations; "
            "for recurrent nets, gradient clipping and gated cells (LSTM/GRU).",
        ),
        Remedy(
            "use a per-parameter adaptive learning rate",
            "Adam's σ rescales each layer's step, compensating part of a depth-wise scale difference.",
        ),
    ),
    VerdictKind.STALLED: (
        Remedy(
            "try the remedies on a copy",
            "No rule explains the flat loss; ravine.diagnose.try_remedies runs η×10, η÷10, warmup and Adam "
            "on copies for a few steps and reports which lowers the loss.",
        ),
        Remedy(
            "run an LR range test",
            "ravine.diagnose.lr_range_test finds the rate where the loss falls fastest.",
        ),
    ),
    VerdictKind.HEALTHY: (),
}


def remedies(kind: VerdictKind) -> tuple[Remedy, ...]:
    return _REMEDIES[kind]
