"""Roboflow's ``Batch``: the elements of a batch-oriented input, each with its index in the
workflow's data lineage. It lives beside the serializers because the JSON ``_type: "batch"``
marker Inference's remote executor sends decodes into one (serializers/registry.py);
blocks see it re-exported from runtime.entities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class Batch(Sequence[T], Generic[T]):
    """A batch of step inputs, each element paired with its index in the workflow's data lineage.

    Indices are tuples (one int per dimensionality level); when none are given the
    elements are numbered ``(0,), (1,), …``.
    """

    __slots__ = ("_content", "_indices")

    def __init__(
        self, content: Sequence[T], indices: Sequence[tuple[int, ...]] | None = None
    ) -> None:
        content = list(content)
        if indices is None:
            indices = [(i,) for i in range(len(content))]
        indices = [tuple(index) for index in indices]
        if len(indices) != len(content):
            raise ValueError(f"Batch got {len(content)} elements but {len(indices)} indices")
        self._content = content
        self._indices = indices

    @property
    def indices(self) -> list[tuple[int, ...]]:
        return list(self._indices)

    def __len__(self) -> int:
        return len(self._content)

    def __iter__(self) -> Iterator[T]:
        return iter(self._content)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> Batch[T]: ...
    def __getitem__(self, index: int | slice) -> T | Batch[T]:
        if isinstance(index, slice):
            return Batch(self._content[index], self._indices[index])
        return self._content[index]

    def iter_with_indices(self) -> Iterator[tuple[tuple[int, ...], T]]:
        return zip(self._indices, self._content)

    def remove_by_indices(self, indices_to_remove: set[tuple[int, ...]]) -> Batch[T]:
        """A new batch without the elements whose index is in ``indices_to_remove``."""
        kept = [(i, c) for i, c in zip(self._indices, self._content) if i not in indices_to_remove]
        return Batch([c for _, c in kept], [i for i, _ in kept])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return self._content == other._content and self._indices == other._indices

    def __repr__(self) -> str:
        return f"Batch(content={self._content!r}, indices={self._indices!r})"
