"""Page retrievers' encoders: ColPali-style multi-vector embeddings of page images.

A page image becomes one unit vector per visual token, a query one per text token, and
a page scores the ColBERT "MaxSim": the sum over query tokens of their best match
among the page's tokens (Faysse et al., 2024, "ColPali"). Models load by hub id or
path through `transformers` (ColPaliForRetrieval / ColQwen2ForRetrieval), the class
chosen by the registry kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmrag.models.image import ImageInput, as_texts, open_image
from mmrag.models.resolve import loading, resolve_model
from mmrag.registry import Registry, require

if TYPE_CHECKING:
    from PIL import Image


def maxsim(query: np.ndarray, pages: Sequence[np.ndarray]) -> np.ndarray:
    """Late-interaction scores of one query (q, d) against pages [(n_i, d)]."""
    return np.asarray([float((page @ query.T).max(axis=0).sum()) for page in pages])


class PageEncoder(ABC):
    """Page images and queries -> lists of (tokens, dim) float32 unit-row matrices."""

    kind: ClassVar[str]
    name: str
    dim: int
    max_side: int | None = 2048

    @abstractmethod
    def _pages(self, images: list[Image.Image]) -> list[np.ndarray]: ...

    @abstractmethod
    def encode_queries(self, texts: Sequence[str], batch_size: int = 16) -> list[np.ndarray]: ...

    def encode_pages(self, images: Sequence[ImageInput], batch_size: int = 4) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            part = [
                open_image(x, max_side=self.max_side) for x in images[start : start + batch_size]
            ]
            out.extend(self._pages(part))
        return out

    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.name,
            "dim": self.dim,
            "params": {"model": self.name},
        }


@lru_cache(maxsize=2)
def _load(model_class: str, processor_class: str, path: str, device: str) -> tuple[Any, Any]:
    require("torch", "images")
    transformers = require("transformers", "images")

    model = getattr(transformers, model_class).from_pretrained(path)
    model.eval().to(device)
    processor = getattr(transformers, processor_class).from_pretrained(path)
    return model, processor


def _rows(embeddings: Any, mask: Any) -> list[np.ndarray]:
    """Per item, the embedding rows of real tokens (padding dropped), as float32."""
    emb = embeddings.float().cpu().numpy()
    keep = mask.bool().cpu().numpy()
    return [np.ascontiguousarray(e[m]) for e, m in zip(emb, keep, strict=True)]


class ColPaliEncoder(PageEncoder):
    """ColPali checkpoints (e.g. vidore/colpali-v1.3-hf) through ColPaliForRetrieval."""

    kind = "colpali"
    model_class: ClassVar[str] = "ColPaliForRetrieval"
    processor_class: ClassVar[str] = "ColPaliProcessor"

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.name = model
        self.device = device
        path = resolve_model(model)
        with loading(model, path):
            self._model, self._processor = _load(
                self.model_class, self.processor_class, path, device
            )
        self.dim = int(self._model.config.embedding_dim)

    def _run(self, inputs: Any) -> list[np.ndarray]:
        import torch

        inputs = inputs.to(self.device)
        with torch.inference_mode():
            out = self._model(**{k: v for k, v in inputs.items() if k != "labels"})
        return _rows(out.embeddings, inputs["attention_mask"])

    def _pages(self, images: list[Image.Image]) -> list[np.ndarray]:
        return self._run(self._processor.process_images(images=images, return_tensors="pt"))

    def encode_queries(self, texts: Sequence[str], batch_size: int = 16) -> list[np.ndarray]:
        items = as_texts(texts)
        out: list[np.ndarray] = []
        for start in range(0, len(items), batch_size):
            inputs = self._processor.process_queries(
                text=items[start : start + batch_size], return_tensors="pt"
            )
            out.extend(self._run(inputs))
        return out


class ColQwen2Encoder(ColPaliEncoder):
    """ColQwen2 checkpoints (e.g. vidore/colqwen2-v1.0-hf): same interface, Qwen2-VL inside."""

    kind = "colqwen2"
    model_class = "ColQwen2ForRetrieval"
    processor_class = "ColQwen2Processor"


PAGE_ENCODERS: Registry[PageEncoder] = Registry(
    "page encoder",
    {
        "colpali": "mmrag.models.page_encoders:ColPaliEncoder",
        "colqwen2": "mmrag.models.page_encoders:ColQwen2Encoder",
    },
)


def load_page_encoder(kind: str = "colpali", **params: Any) -> PageEncoder:
    return PAGE_ENCODERS.create(kind, **params)
