"""CLIP and SigLIP dual encoders through `transformers`, by hub id or local path.

The model class is chosen by the registry kind ("clip" or "siglip"), never guessed
from the model name. open_clip is not used: it needs torchvision, which does not
install beside our torch build.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.image import ImageTextEncoder, as_texts, batched
from mmrag.models.resolve import loading, resolve_model
from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image


def _pooled(output: Any) -> Any:
    """transformers 5 returns a model output whose pooler_output is the projection;
    older versions return the tensor itself."""
    return output if hasattr(output, "shape") else output.pooler_output


@lru_cache(maxsize=4)
def _load(model_class: str, path: str, device: str) -> tuple[Any, Any, Any]:
    require("torch", "images")
    transformers = require("transformers", "images")

    cls = getattr(transformers, model_class)
    model = cls.from_pretrained(path)
    model.eval().to(device)
    image_processor = transformers.AutoImageProcessor.from_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return model, image_processor, tokenizer


class HFDualEncoder(ImageTextEncoder):
    """A transformers image–text model with get_image_features / get_text_features."""

    model_class: ClassVar[str]
    # SigLIP was trained on texts padded to a fixed length; CLIP on the longest in batch.
    text_padding: ClassVar[str] = "longest"

    def __init__(self, model: str, device: str = "cpu", max_side: int | None = 1024) -> None:
        self.name = model
        self.device = device
        self.max_side = max_side
        path = resolve_model(model)
        with loading(model, path):
            self._model, self._images, self._tokenizer = _load(self.model_class, path, device)
        self.dim = self._dimension()

    def _dimension(self) -> int:
        config = self._model.config
        dim = getattr(config, "projection_dim", None) or config.vision_config.hidden_size
        if not isinstance(dim, int):
            raise ConfigError(f"{self.name!r} does not declare its embedding dimension")
        return dim

    def params(self) -> dict[str, Any]:
        return {"model": self.name}

    def _max_length(self) -> int:
        limit = self._tokenizer.model_max_length
        positions = self._model.config.text_config.max_position_embeddings
        return min(limit, positions) if isinstance(limit, int) and limit < 10**6 else positions

    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        inputs = self._images(images=images, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = _pooled(self._model.get_image_features(pixel_values=inputs["pixel_values"]))
        return out.float().cpu().numpy()

    def _run_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenizer(
            texts,
            padding="max_length" if self.text_padding == "max_length" else True,
            truncation=True,
            max_length=self._max_length(),
            return_tensors="pt",
        ).to(self.device)
        kwargs = {"input_ids": tokens["input_ids"]}
        if self.text_padding != "max_length" and "attention_mask" in tokens:
            kwargs["attention_mask"] = tokens["attention_mask"]
        with torch.inference_mode():
            out = _pooled(self._model.get_text_features(**kwargs))
        return out.float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return batched(as_texts(texts), batch_size, self._run_texts, self.dim)


class CLIPEncoder(HFDualEncoder):
    """OpenAI CLIP and compatible checkpoints (CLIPModel), e.g. openai/clip-vit-base-patch32."""

    kind = "clip"
    model_class = "CLIPModel"


class SigLIPEncoder(HFDualEncoder):
    """SigLIP checkpoints (SiglipModel), e.g. google/siglip-base-patch16-224.

    SigLIP's text tower saw only texts padded to the full length without an attention
    mask, so texts are encoded the same way (what its processor does).
    """

    kind = "siglip"
    model_class = "SiglipModel"
    text_padding = "max_length"
