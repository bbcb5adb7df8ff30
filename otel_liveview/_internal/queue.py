"""The bounded hand-off from any thread to the export worker: never blocks, a full queue refuses."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from otel_liveview._internal.records import Item

T = TypeVar("T", bound=Item)


class RecordQueue(Generic[T]):
    """A bounded hand-off from any thread to the export worker, of items of one shape."""

    __slots__ = ("_items", "capacity", "wake", "wake_at")

    def __init__(self, capacity: int, wake_at: int, wake: threading.Event | None = None) -> None:
        self._items: deque[T] = deque()
        self.capacity = capacity
        self.wake_at = wake_at  # set `wake` when this many are queued
        self.wake = wake or threading.Event()

    def put(self, item: T) -> bool:
        items = self._items
        if len(items) >= self.capacity:
            return False
        items.append(item)  # deque.append is atomic
        if len(items) == self.wake_at:
            self.wake.set()
        return True

    def take(self, limit: int) -> list[T]:
        items = self._items
        batch: list[T] = []
        try:
            for _ in range(limit):
                batch.append(items.popleft())
        except IndexError:
            pass
        return batch

    def __len__(self) -> int:
        return len(self._items)

    def reset(self, wake: threading.Event | None = None) -> None:
        """Forget everything (a forked child must not ship its parent's records)."""
        self._items = deque()
        self.wake = wake or threading.Event()
