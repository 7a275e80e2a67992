"""One per-step signal over a whole run in bounded memory: the newest rows exact, older ones in blocks.

A :class:`Column` reads like a list with one entry per recorded row (``len``, indexing, slices, iteration,
``append`` and ``pop`` at the end), but stores only

- the first ``head`` rows exactly (the run's starting level),
- the newest ``recent`` rows exactly (everything the verdict rules look back over),
- everything in between as blocks of consecutive rows, each kept as (min, median, max). A block is made of
  ``block`` rows when they leave the recent window; whenever more than ``per_level`` blocks of one size
  exist, the two oldest of that size merge into one twice as large (an exponential histogram). Memory is
  O(head + recent + per_level · log(rows)), whatever the run length.

A row inside a block reads back as the block's median (for merged blocks: the mean of the two medians, an
approximation); :meth:`Column.blocks` gives the (first row, last row, min, median, max) of every block for
figures that draw the envelope.
"""

from __future__ import annotations

import bisect
import math
import statistics
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

__all__ = ["Block", "Column", "StepColumn"]

Block = tuple[int, int, float, float, float]
"""(first row, last row, min, median, max) of a stretch of rows."""


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return math.nan, math.nan, math.nan
    return min(kept), statistics.median(kept), max(kept)


class Column(Sequence[float]):
    """A per-step signal in bounded memory (see the module docstring).

    Args:
        recent: Newest rows kept exactly.
        head: First rows kept exactly.
        block: Rows per block when they leave the recent window.
        per_level: Blocks of one size kept before the two oldest merge.
        values: Initial rows.
    """

    typecode = "d"

    def __init__(
        self,
        values: Iterable[float] = (),
        *,
        recent: int = 4096,
        head: int = 64,
        block: int = 16,
        per_level: int = 16,
    ) -> None:
        self.recent_size, self.head_size, self.block_size, self.per_level = recent, head, block, per_level
        self._head = array(self.typecode)
        self._recent = array(self.typecode)
        self._starts: list[int] = []  # first row of each block, oldest first
        self._counts: list[int] = []
        self._lo = array("d")
        self._mid = array("d")
        self._hi = array("d")
        self._recent_start = 0
        for value in values:
            self.append(value)

    # ---------------------------------------------------------------- writing
    def append(self, value: Any) -> None:
        """Add a row at the end."""
        if not self._starts and not self._recent and len(self._head) < self.head_size:
            self._head.append(value)
            self._recent_start = len(self._head)
            return
        self._recent.append(value)
        if len(self._recent) >= self.recent_size + self.block_size:
            self._compress()

    def pop(self) -> Any:
        """Remove and return the last row."""
        if self._recent:
            return self._recent.pop()
        if self._starts:
            raise IndexError("Column.pop: the newest rows are already summarised in blocks")
        value = self._head.pop()
        self._recent_start = len(self._head)
        return value

    def _compress(self) -> None:
        take = self.block_size
        lo, mid, hi = _summary(self._recent[:take])
        self._push_block(self._recent_start, take, lo, mid, hi)
        del self._recent[:take]
        self._recent_start += take
        self._merge()

    def _push_block(self, start: int, count: int, lo: float, mid: float, hi: float) -> None:
        self._starts.append(start)
        self._counts.append(count)
        self._lo.append(lo)
        self._mid.append(mid)
        self._hi.append(hi)

    def _merge(self) -> None:
        """Blocks are oldest (largest) first; merge the two oldest of a size while it has too many.

        Sizes never increase from the oldest block to the newest (a merge makes the oldest block of a size the
        newest of the next), so the blocks of each size are found by walking back from the newest."""
        size, counts = self.block_size, self._counts
        end = len(counts)
        while True:
            first = end
            while first > 0 and counts[first - 1] == size:
                first -= 1
            if end - first <= self.per_level:
                return
            a, b = first, first + 1
            counts[a] += counts[b]
            self._lo[a] = min(self._lo[a], self._lo[b]) if not math.isnan(self._lo[a]) else self._lo[b]
            self._hi[a] = max(self._hi[a], self._hi[b]) if not math.isnan(self._hi[a]) else self._hi[b]
            self._mid[a] = self._merged_median(a, b)
            for store in (self._starts, counts, self._lo, self._mid, self._hi):
                del store[b]
            end, size = a + 1, size * 2

    def _merged_median(self, a: int, b: int) -> float:
        x, y = self._mid[a], self._mid[b]
        if math.isnan(x):
            return y
        return x if math.isnan(y) else (x + y) / 2

    # ---------------------------------------------------------------- reading
    def __len__(self) -> int:
        return self._recent_start + len(self._recent)

    def _block_value(self, index: int, row: int) -> Any:
        return self._mid[index]

    def _row(self, row: int) -> Any:
        if row < len(self._head):
            return self._head[row]
        if row >= self._recent_start:
            return self._recent[row - self._recent_start]
        index = bisect.bisect_right(self._starts, row) - 1
        return self._block_value(index, row)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1 and start >= self._recent_start:
                return self._recent[start - self._recent_start : stop - self._recent_start].tolist()
            if step == 1 and stop <= len(self._head):
                return self._head[start:stop].tolist()
            return [self._row(i) for i in range(start, stop, step)]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"Column index {index} out of range for {n} rows")
        return self._row(index)

    def __iter__(self) -> Iterator[Any]:
        yield from self._head
        for index, (start, count) in enumerate(zip(self._starts, self._counts, strict=True)):
            for row in range(start, start + count):
                yield self._block_value(index, row)
        yield from self._recent

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} rows, {len(self._starts)} blocks)"

    @property
    def exact_from(self) -> int:
        """First row of the exact recent window (rows before it, past the head, are block medians)."""
        return self._recent_start

    def blocks(self) -> list[Block]:
        """Every stretch of rows as (first row, last row, min, median, max): the head's and the recent
        window's rows one by one, the blocks in between as they are kept."""
        out: list[Block] = [(i, i, v, v, v) for i, v in enumerate(self._head)]
        for start, count, lo, mid, hi in zip(
            self._starts, self._counts, self._lo, self._mid, self._hi, strict=True
        ):
            out.append((start, start + count - 1, lo, mid, hi))
        out.extend(
            (self._recent_start + i, self._recent_start + i, v, v, v) for i, v in enumerate(self._recent)
        )
        return out

    def nbytes(self) -> int:
        """Bytes held by the stored values (not the Python object overhead)."""
        arrays = (self._head, self._recent, self._lo, self._mid, self._hi)
        return sum(a.itemsize * len(a) for a in arrays) + 16 * len(self._starts)


class StepColumn(Column):
    """The step index of each row: like :class:`Column`, but integers, and exact inside a block whenever the
    block's steps are consecutive (as the Monitor's always are)."""

    typecode = "q"

    def _block_value(self, index: int, row: int) -> Any:
        first, last, count = int(self._lo[index]), int(self._hi[index]), self._counts[index]
        if last - first + 1 == count:
            return first + row - self._starts[index]
        return int(self._mid[index])
