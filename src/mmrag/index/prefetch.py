"""Run a producer in a background thread, at most a byte budget ahead of its consumer.

Indexing is two kinds of CPU work: preparing sources (reading, parsing, chunking,
analysing: tokenizers, regex, the stemmer) and embedding them (ONNX Runtime or torch).
Both spend much of their time outside the GIL, so preparing the next sources in a
thread while the current ones are embedded keeps two cores busy. The budget bounds
memory when preparing is faster than embedding, which it usually is.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class _Done:
    pass


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetch(Generic[T]):
    """Iterate `items` (produced in a thread) in order, with at most `max_bytes` queued.

    `size` says how many bytes an item holds; one item is always let through, however
    large, so a single huge source cannot deadlock the pair. An exception in the
    producer is raised in the consumer, at the place the failed item would have been.
    Use as a context manager: leaving it early stops the producer after its current item.
    """

    def __init__(
        self,
        items: Iterable[T],
        size: Callable[[T], int],
        max_bytes: int,
        name: str = "mmrag-prefetch",
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self._items = items
        self._size = size
        self.max_bytes = max_bytes
        self._queue: deque[tuple[T | _Done | _Failed, int]] = deque()
        self._queued_bytes = 0
        self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self.peak_bytes = 0  # the most ever queued, for tests and benchmarks

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._consume()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._changed:
            self._stopped = True
            self._queue.clear()
            self._changed.notify_all()
        self._thread.join()

    def _put(self, item: T | _Done | _Failed, nbytes: int) -> bool:
        with self._changed:
            while not self._stopped and self._queue and self._queued_bytes >= self.max_bytes:
                self._changed.wait()
            if self._stopped:
                return False
            self._queue.append((item, nbytes))
            self._queued_bytes += nbytes
            self.peak_bytes = max(self.peak_bytes, self._queued_bytes)
            self._changed.notify_all()
            return True

    def _produce(self) -> None:
        iterator = iter(self._items)
        try:
            for item in iterator:
                if not self._put(item, self._size(item)):
                    break
            else:
                self._put(_Done(), 0)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(_Failed(exc), 0)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator's own finally blocks run in this thread
                close()

    def _consume(self) -> Iterator[T]:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                item, nbytes = self._queue.popleft()
                self._queued_bytes -= nbytes
                self._changed.notify_all()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
