"""Progress bars for long steps (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Silent:
    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        pass

    def advance(self, *args: object, **kwargs: object) -> None:
        pass


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress | _Silent]:
    if not enabled:
        yield _Silent()
        return
    with _bar() as bar:
        yield bar


def _bar(*counts: ProgressColumn) -> Progress:
    """The one bar layout mmrag shows; `counts` go after "done of total"."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *counts,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


class ChunkRateColumn(ProgressColumn):
    """Chunks written so far and chunks per second over the whole run.

    The run's average rather than rich's moving speed: chunks are committed in batches,
    so the speed between two updates jumps from zero to thousands.
    """

    def render(self, task: Task) -> Text:
        chunks = int(task.fields.get("chunks", 0))
        elapsed = task.elapsed or 0.0
        rate = chunks / elapsed if elapsed > 0 else 0.0
        return Text(f"{chunks:,} chunks  {rate:,.1f} chunks/s", style="cyan")


class IndexingBar:
    """One line for an indexing run: current source, sources done of total, chunks, chunks/s.

    Safe to update from the thread that prepares sources and the one that writes them:
    rich's Progress takes a lock on every update.
    """

    def __init__(self, bar: Progress | _Silent, total: int | None, unit: str) -> None:
        self._bar = bar
        self._unit = unit
        self._chunks = 0
        self._task = bar.add_task(f"indexing {unit}", total=total, chunks=0)

    def source(self, name: str) -> None:
        """The source being prepared now, shown in the description."""
        self._bar.update(self._task, description=f"indexing {name[:40]}")

    def sources_done(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)

    def chunks_written(self, n: int) -> None:
        self._chunks += n
        self._bar.update(self._task, chunks=self._chunks)


@contextmanager
def indexing_progress(
    enabled: bool = True, total: int | None = None, unit: str = "files"
) -> Iterator[IndexingBar]:
    if not enabled:
        yield IndexingBar(_Silent(), total, unit)
        return
    with _bar(TextColumn(unit), ChunkRateColumn()) as bar:
        yield IndexingBar(bar, total, unit)
