"""Everything `mmrag index` can be asked for, as one serialisable value.

A store remembers the config it was last indexed with (`Store.index_config()`), so a
re-run without options indexes new and changed files the same way, and the server's
uploads follow it too. The values are checked here, once, whoever builds the config:
the CLI, the server, a Ray worker reading it back, or a caller of the Python API.

    config = IndexConfig(image_encoder="lit", ocr="never")
    IndexConfig.from_dict(config.to_dict()) == config
    config.replace(text_encoder="sentence-transformers")  # its text_model is reset
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmrag.errors import ConfigError
from mmrag.ingest.image_loader import OCR_MODES

if TYPE_CHECKING:
    from mmrag.index.base import Store

AUTO = "auto"  # image_encoder: keep the store's image encoder, or lit when there are images

# Each encoder kind and the setting naming its model: a model belongs to its kind, so a
# change of kind resets the model (see `replace`).
MODEL_OF = {
    "text_encoder": "text_model",
    "image_encoder": "image_model",
    "page_encoder": "page_model",
    "audio_encoder": "audio_model",
}


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """How files become stored documents and vectors. None switches a part off."""

    # text vectors: a text encoder kind (onnx, sentence-transformers, use-multilingual or
    # "module:Class"); None: no text vectors, BM25 only. Model: its default when None.
    text_encoder: str | None = "onnx"
    text_model: str | None = None
    # the image-text space: "auto", lit, conse, clip, siglip or "module:Class"; None: none
    image_encoder: str | None = AUTO
    image_model: str | None = None
    ocr: str = "auto"  # images and scanned pages: auto, always, never
    pdf_pages: bool = False  # PDF pages also as PAGE documents (page images)
    # late-interaction page vectors (colpali, colqwen2), which need a model
    page_encoder: str | None = None
    page_model: str | None = None
    # Whisper for speech in audio and video (tiny.en, base, a path or hub id); None: video
    # frames only (audio files keep the default loader, which transcribes with tiny.en)
    asr: str | None = "tiny.en"
    audio_encoder: str | None = None  # sound vectors: clap, which needs a model
    audio_model: str | None = None
    chunk_tokens: int = 256  # 0: one chunk per section
    overlap: int = 32
    workers: int = 2  # embedding threads in-process, embedding actors on Ray

    def __post_init__(self) -> None:
        _check(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, one per setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexConfig:
        """A config from `to_dict()`'s output; missing settings take their defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"an index config is a mapping of settings, not {data!r}")
        unknown = sorted(set(data) - set(NAMES))
        if unknown:
            raise ConfigError(
                f"unknown index setting{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; known: {', '.join(NAMES)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> IndexConfig:
        """This config with some settings changed. Changing an encoder's kind without
        naming a model forgets the old model, which belonged to the old kind."""
        unknown = sorted(set(changes) - set(NAMES))
        if unknown:
            raise ConfigError(f"unknown index setting {unknown[0]!r}; known: {', '.join(NAMES)}")
        for kind, model in MODEL_OF.items():
            if kind in changes and model not in changes and changes[kind] != getattr(self, kind):
                changes[model] = None
        return dataclasses.replace(self, **changes)


NAMES = tuple(f.name for f in dataclasses.fields(IndexConfig))


def config_of(store: Store, dense: bool = True) -> IndexConfig:
    """The config `store` was indexed with; for a store indexed before configs were
    remembered, the defaults with the text encoder its text field was built with (or
    none, when it has no text field and `dense` is off)."""
    stored = store.index_config()
    if stored is not None:
        try:
            return IndexConfig.from_dict(stored)
        except ConfigError as exc:
            raise ConfigError(f"the store's remembered index config: {exc}") from exc
    text = store.fields().get("text")
    if text is not None:
        info = text["encoder"]
        return IndexConfig(text_encoder=info["kind"], text_model=info.get("model"))
    return IndexConfig() if dense else IndexConfig(text_encoder=None)


# ---- validation: every value, in one place ------------------------------------------


def _check(config: IndexConfig) -> None:
    for name in ("text_model", "image_model", "page_model", "audio_model", "asr"):
        _optional_text(name, getattr(config, name))
    _kind("text_encoder", config.text_encoder, _text_kinds)
    if config.image_encoder != AUTO:
        _kind("image_encoder", config.image_encoder, _image_kinds, also=(AUTO,))
    _kind("page_encoder", config.page_encoder, _page_kinds)
    _kind("audio_encoder", config.audio_encoder, _audio_kinds, paths=False)
    if config.ocr not in OCR_MODES:
        raise ConfigError(f"ocr takes {', '.join(OCR_MODES)}, not {config.ocr!r}")
    if not isinstance(config.pdf_pages, bool):
        raise ConfigError(f"pdf_pages is true or false, not {config.pdf_pages!r}")
    if config.page_encoder and not config.page_model:
        raise ConfigError("a page encoder needs --page-model (a hub id or path)")
    if config.audio_encoder and not config.audio_model:
        raise ConfigError("an audio encoder needs --audio-model (a CLAP hub id or path)")
    _count("chunk_tokens", config.chunk_tokens, 0)
    _count("overlap", config.overlap, 0)
    _count("workers", config.workers, 1)
    if config.chunk_tokens > 0 and config.overlap >= config.chunk_tokens:
        raise ConfigError(
            f"overlap must be smaller than chunk_tokens ({config.chunk_tokens}), "
            f"got {config.overlap}"
        )


def _optional_text(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{name} is a name or None, not {value!r}")


def _count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be a whole number >= {least}, not {value!r}")


def _kind(
    name: str,
    value: str | None,
    known: Any,
    also: tuple[str, ...] = (),
    paths: bool = True,
) -> None:
    """A registered encoder kind, or (where the registry takes one) a "module:Class"."""
    if value is None:
        return
    _optional_text(name, value)
    choices = [*also, *known()]
    if value in choices or (paths and ":" in value):
        return
    off = " or None for none" if name != "text_encoder" else " or None for BM25 only"
    raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}{off}")


def _text_kinds() -> list[str]:
    from mmrag.models.text import TEXT_ENCODERS

    return TEXT_ENCODERS.names()


def _image_kinds() -> list[str]:
    from mmrag.models.image import IMAGE_ENCODERS

    return IMAGE_ENCODERS.names()


def _page_kinds() -> list[str]:
    from mmrag.models.page_encoders import PAGE_ENCODERS

    return PAGE_ENCODERS.names()


def _audio_kinds() -> list[str]:
    from mmrag.models.clap import AUDIO_ENCODERS

    return sorted(AUDIO_ENCODERS)
