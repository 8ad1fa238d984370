"""Drive a blocking iterator (a pipeline stream) from async code, and stop it when asked.

The iterator runs in a thread of its own that owns it from start to close, so stopping
never races a `next()` in flight: the thread sees the stop flag after the current item
(one token) and closes the iterator, which stops the model. A client that disconnects
or a request that times out therefore leaves no generation running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_ITEM, _ERROR, _END = "item", "error", "end"


class BackgroundIterator(Generic[T]):
    """Iterate `factory()` in a worker thread; read items with `await next_item()`.

    `slots` (a semaphore) bounds how many such workers run their iterator at once;
    `on_start` / `on_end` run in the worker around the iteration, for bookkeeping.
    """

    def __init__(
        self,
        factory: Callable[[], Iterator[T]],
        *,
        slots: threading.Semaphore | None = None,
        on_start: Callable[[], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._slots, self._on_start, self._on_end = slots, on_start, on_end
        self._thread = threading.Thread(target=self._work, args=(factory,), daemon=True)
        self._thread.start()

    def _put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (server shutting down)
            pass

    def _acquire(self) -> bool:
        if self._slots is None:
            return True
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.1):
                return True
        return False

    def _work(self, factory: Callable[[], Iterator[T]]) -> None:
        if not self._acquire():
            self._put(_END, None)
            self.finished.set()
            return
        iterator: Iterator[T] | None = None
        try:
            if self._on_start is not None:
                self._on_start()
            iterator = factory()
            for item in iterator:
                if self._stop.is_set():
                    break
                self._put(_ITEM, item)
        except BaseException as exc:  # noqa: BLE001 - handed to the async side, which re-raises
            self._put(_ERROR, exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - report, never lose the end marker
                    self._put(_ERROR, exc)
            if self._slots is not None:
                self._slots.release()
            if self._on_end is not None:
                self._on_end()
            self._put(_END, None)
            self.finished.set()

    async def next_item(self, timeout: float | None = None) -> T:
        """The next item; StopAsyncIteration at the end, TimeoutError past `timeout` seconds."""
        kind, value = await asyncio.wait_for(self._queue.get(), timeout)
        if kind == _ITEM:
            return value
        if kind == _ERROR:
            raise value
        self._queue.put_nowait((kind, value))  # later calls see the end again
        raise StopAsyncIteration

    def stop(self) -> None:
        """Ask the worker to stop after its current item; it closes the iterator itself."""
        self._stop.set()
