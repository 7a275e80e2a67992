"""Real data that needs no download: MNIST-1D (generated offline) and scikit-learn's digits (shipped).

Both return a :class:`Dataset` of float32 inputs and int64 labels, split into train and test, seeded.

Example:
    >>> from ravine.data import digits
    >>> data = digits(seed=0)
    >>> data.x_train.shape[1], data.num_classes
    (64, 10)
"""

from __future__ import annotations

from ravine.data._datasets import Dataset, digits, mnist1d

__all__ = ["Dataset", "digits", "mnist1d"]
