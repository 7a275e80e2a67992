"""Records the monitor keeps (probes, classifications, notes, errors) in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar, overload

__all__ = ["Capped"]

T = TypeVar("T")


class Capped(Sequence[T], Generic[T]):
    """A list that keeps its first ``head`` and its newest ``tail`` items (those in between are dropped and
    counted in :attr:`dropped`); oldest first, like a list.

    Args:
        head: First items kept for good (the run's baseline).
        tail: Newest items kept.
        items: Initial items.

    Example:
        >>> log = Capped(head=2, tail=3, items=range(10))
        >>> list(log), log.dropped
        ([0, 1, 7, 8, 9], 5)
    """

    def __init__(self, *, head: int = 16, tail: int = 1024, items: Iterable[T] = ()) -> None:
        self.head_size = head
        self._head: list[T] = []
        self._tail: deque[T] = deque(maxlen=tail)
        self.dropped = 0
        for item in items:
            self.append(item)

    def append(self, item: T) -> None:
        """Add an item at the end (dropping the oldest item past the head when full)."""
        if len(self._head) < self.head_size and not self._tail:
            self._head.append(item)
            return
        if len(self._tail) == self._tail.maxlen:
            self.dropped += 1
        self._tail.append(item)

    def extend(self, items: Iterable[T]) -> None:
        """Append each item."""
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return len(self._head) + len(self._tail)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        k = len(self._head)
        return self._head[index] if index < k else self._tail[index - k]

    def __iter__(self) -> Iterator[T]:
        yield from self._head
        yield from self._tail

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        dropped = f", {self.dropped} dropped" if self.dropped else ""
        return f"Capped({list(self)!r}{dropped})"
