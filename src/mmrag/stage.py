"""The one interface of the stages between retrieval and generation.

Rerankers and refiners are both postprocessors of a ranking: a `Ranked` and its
`Limits` in, a `Ranked` out, with the stage's own `StageReport` appended. A pipeline is
then a list of (stage, limits) steps run in order, and it needs to know nothing about
which kind of stage each one is; a stage describes its own run for the pipeline's
summary (`summarise`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from mmrag.types import Ranked, StageReport


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a ranking a stage may pass on: `k` hits and/or `tokens` of context
    (instruction, question and passages together). None: the stage's own default."""

    k: int | None = None
    tokens: int | None = None


class Stage(ABC):
    """A step between retrieval and generation."""

    name: str = "stage"
    # the `StageReport.stage` label of this kind of step ("rerank", "refine")
    kind: ClassVar[str] = "stage"

    @abstractmethod
    def apply(self, ranked: Ranked, limits: Limits) -> Ranked:
        """The ranking after this stage; its report is appended to `ranked.reports`."""

    def summarise(
        self, before: Ranked, after: Ranked, reports: Sequence[StageReport], limits: Limits
    ) -> dict[str, Any]:
        """Figures for the pipeline's summary of this run (`StageReport.extra`); `reports`
        are the ones this run added."""
        return {}
