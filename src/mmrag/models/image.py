"""Image–text dual encoders: images and texts in, L2-normalised vectors of one space out.

Every encoder embeds images (`encode_images`) and texts (`encode_texts`) into the same
space, so one vector field serves text → image, image → image and image → text search.
`info()` identifies the space (a store refuses to mix two), and carries the parameters
that rebuild the encoder (`image_encoder_from_info`).

Images are opened by `open_image`, which every loader and encoder shares: EXIF
orientation applied, a pixel-count guard against decompression bombs checked before
any pixel is decoded, truncated or corrupt files turned into `IngestError`.
"""

from __future__ import annotations

import io
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np

from mmrag.errors import ConfigError, IngestError
from mmrag.models.text import normalise
from mmrag.progress import progress as progress_bar
from mmrag.registry import Registry, require
from mmrag.types import Modality, Query

if TYPE_CHECKING:
    from PIL import Image

ImageInput: TypeAlias = "Image.Image | str | Path"


def pil_image() -> ModuleType:
    """Pillow's `PIL.Image`, imported on first use (the `images` extra installs it)."""
    return require("PIL.Image", "images")


# 64 megapixels (8000 x 8000): above any photo or 600-dpi A4 scan we index, far below
# the 400 MP of a 20000 x 20000 bomb whose RGB decode alone would take 1.2 GB.
MAX_PIXELS = 64_000_000


def open_image(
    src: ImageInput | bytes, *, max_pixels: int = MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """A decoded RGB image, upright, optionally shrunk so its longer side is <= max_side.

    The size check reads only the header, so a bomb fails before any allocation. A
    JPEG that will be shrunk anyway is decoded at a reduced scale (draft mode), which
    is several times faster for large photos.
    """
    Image = pil_image()
    if isinstance(src, Image.Image):
        image, name = src, "<image>"
    else:
        name = "<bytes>" if isinstance(src, bytes) else str(src)
        image = _open(io.BytesIO(src) if isinstance(src, bytes) else src, name)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise IngestError(name, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise IngestError(
            name,
            f"image is {width}x{height} = {width * height / 1e6:.0f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit (decompression-bomb guard)",
        )
    try:
        if max_side and image.format == "JPEG" and max(width, height) > 2 * max_side:
            image.draft("RGB", (max_side, max_side))
        with warnings.catch_warnings():
            # Our own limit was checked above; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            image = require("PIL.ImageOps", "images").exif_transpose(image) or image
            image = _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated data as OSError ("image file is truncated") and some
        # broken headers as SyntaxError.
        raise IngestError(name, f"corrupt or truncated image: {exc}") from exc
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return image


def _open(src: str | Path | io.BytesIO, name: str) -> Image.Image:
    """Read the header only (Pillow decodes lazily)."""
    Image = pil_image()
    try:
        return Image.open(src)
    except FileNotFoundError as exc:
        raise IngestError(name, "no such file or directory") from exc
    except Image.UnidentifiedImageError as exc:
        raise IngestError(name, "not an image Pillow can read (corrupt or unsupported)") from exc
    except Image.DecompressionBombError as exc:
        raise IngestError(name, f"refused as a decompression bomb: {exc}") from exc
    except OSError as exc:
        raise IngestError(name, f"cannot read image: {exc}") from exc


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white (a logo on black would vanish otherwise)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        Image = pil_image()
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _as_images(images: Sequence[ImageInput]) -> list[ImageInput]:
    Image = pil_image()
    if isinstance(images, (str, Path, Image.Image)):
        raise TypeError("encode_images() takes a sequence of images; wrap one in a list")
    out = list(images)
    for item in out:
        if not isinstance(item, (str, Path, Image.Image)):
            raise TypeError(f"encode_images() takes images or paths, got {type(item).__name__}")
    return out


class ImageTextEncoder(ABC):
    """Embeds images and texts into one space, as unit-length float32 rows."""

    kind: ClassVar[str]  # the registry name
    name: str  # the model (packaged name, path or hub id)
    dim: int
    # Images are decoded no larger than this before preprocessing (speed, memory).
    max_side: int | None = 1024

    @abstractmethod
    def _embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """One batch of decoded RGB images -> (n, dim), not necessarily normalised."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), dim) float32 unit rows, in the space of the images."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor parameters that rebuild this encoder (JSON-serialisable)."""

    def encode_images(
        self, images: Sequence[ImageInput], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """(len(images), dim) float32 unit rows; paths are opened batch by batch.

        A path that is not a readable image raises IngestError naming it.
        """
        items = _as_images(images)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        with progress_bar(progress and len(items) > 0) as bar:
            task = bar.add_task(f"embedding images with {self.name}", total=len(items))
            for start in range(0, len(items), batch_size):
                part = [
                    open_image(x, max_side=self.max_side) for x in items[start : start + batch_size]
                ]
                out[start : start + len(part)] = normalise(self._embed_images(part))
                bar.advance(task, len(part))
        return out

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.name, "dim": self.dim, "params": self.params()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.dim})"


def batched(
    texts: list[str], batch_size: int, run: Callable[[list[str]], np.ndarray], dim: int
) -> np.ndarray:
    """Run a text tower batch by batch and normalise its rows."""
    out = np.empty((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        part = texts[start : start + batch_size]
        out[start : start + len(part)] = normalise(run(part))
    return out


def as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode_texts() takes a sequence of texts; wrap a single text in a list")
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise TypeError(f"encode_texts() takes strings, got {type(t).__name__}")
    return out


IMAGE_ENCODERS: Registry[ImageTextEncoder] = Registry(
    "image encoder",
    {
        "conse": "mmrag.models.conse:ConSEEncoder",
        "lit": "mmrag.models.conse:LiTEncoder",
        "clip": "mmrag.models.clip:CLIPEncoder",
        "siglip": "mmrag.models.clip:SigLIPEncoder",
    },
)


def load_image_encoder(kind: str = "conse", **params: Any) -> ImageTextEncoder:
    """An image–text encoder by registry name (or "module:Class"), e.g. ("clip", model=...)."""
    return IMAGE_ENCODERS.create(kind, **params)


def image_encoder_from_info(info: dict[str, Any]) -> ImageTextEncoder:
    """Rebuild the encoder a vector field was built with, from the field's stored info."""
    if "kind" not in info or "params" not in info:
        raise ConfigError(f"not an image encoder record: {info}")
    encoder = load_image_encoder(info["kind"], **info["params"])
    if encoder.info() != info:
        raise ConfigError(
            f"the image encoder rebuilt from {info} now identifies as {encoder.info()} "
            "(its model or head changed since the store was built)"
        )
    return encoder


# Documents an image-text field holds vectors for (video: its shots' keyframe vectors).
VISUAL = (Modality.IMAGE, Modality.PAGE, Modality.VIDEO)


def query_vectors(encoder: ImageTextEncoder, queries: Sequence[Query]) -> np.ndarray:
    """One unit vector per query: its text, its image, or the normalised sum of both."""
    out = np.zeros((len(queries), encoder.dim), dtype=np.float32)
    with_text = [i for i, q in enumerate(queries) if q.text.strip()]
    with_image = [i for i, q in enumerate(queries) if q.image]
    if with_text:
        out[with_text] += encoder.encode_texts([queries[i].text for i in with_text])
    if with_image:
        out[with_image] += encoder.encode_images([queries[i].image for i in with_image])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
