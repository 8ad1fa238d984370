"""What a vector field holds: its space, its width, and the encoder that made its vectors.

A store keeps one record per vector field. `FieldSpec` is that record typed: the
`space` the vectors live in (text, image-text, audio-text, page), `dim`, and the
encoder, both as its identity (everything that shapes the vectors: a store refuses to
mix two) and as what rebuilds it (`EncoderSpec`: a registry kind and its constructor
parameters). `load_encoder` turns a spec back into the encoder that reads queries for it.

Records written before fields carried their space are read by `FieldSpec.from_dict`,
which derives the space once from the record's shape (the migration; see `_legacy_space`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmrag.errors import ConfigError, StoreError

TEXT = "text"
IMAGE_TEXT = "image-text"
AUDIO_TEXT = "audio-text"
PAGE = "page"
SPACES = (TEXT, IMAGE_TEXT, AUDIO_TEXT, PAGE)
_PAGE_KINDS = frozenset({"colpali", "colqwen2"})  # models/page_encoders.py


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """A registry kind and the constructor parameters that rebuild the encoder."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    space: str
    dim: int
    identity: dict[str, Any]  # the encoder's info(): what its vectors depend on

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ConfigError(f"unknown vector space {self.space!r}; one of {', '.join(SPACES)}")
        if "kind" not in self.identity:
            raise ConfigError(f"an encoder record needs its kind: {self.identity}")

    @property
    def encoder(self) -> EncoderSpec:
        info = self.identity
        if self.space in (IMAGE_TEXT, PAGE):
            return EncoderSpec(info["kind"], dict(info.get("params") or {}))
        if self.space == AUDIO_TEXT:
            return EncoderSpec(info["kind"], {"model": info["model"]})
        # a text encoder's info is its constructor's parameters (model, pooling, prefixes)
        params = {k: v for k, v in info.items() if k not in ("kind", "dim")}
        return EncoderSpec(info["kind"], params)

    def same_vectors(self, other: FieldSpec) -> bool:
        return (self.space, self.dim, self.identity) == (other.space, other.dim, other.identity)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "dim": self.dim, "encoder": dict(self.identity)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FieldSpec:
        try:
            identity = dict(record["encoder"])
            dim = int(record["dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"not a vector field record: {record}") from exc
        return cls(record.get("space") or _legacy_space(identity), dim, identity)


def _legacy_space(info: dict[str, Any]) -> str:
    """The space of a record written before records named it, from the shapes encoders'
    info() had then: CLAP said its space, image and page encoders carried their
    constructor `params`, text encoders neither."""
    if info.get("space") == AUDIO_TEXT:
        return AUDIO_TEXT
    if "params" in info:
        return PAGE if info.get("kind") in _PAGE_KINDS else IMAGE_TEXT
    return TEXT


def field_spec(
    store: Any, name: str, space: str | None = None, hint: str = "index with an encoder for it"
) -> FieldSpec:
    """The spec of one of `store`'s vector fields; a clear error (ending in `hint`) when
    it has none, or when its vectors are not of `space` (None: any)."""
    fields = store.fields()
    if name not in fields:
        raise StoreError(f"the store has no vector field {name!r}; {hint}")
    spec = FieldSpec.from_dict(fields[name])
    if space is not None and spec.space != space:
        raise StoreError(f"vector field {name!r} holds {spec.space} vectors, not {space} ones")
    return spec


def load_encoder(spec: FieldSpec) -> Any:
    """The encoder that made a field's vectors, rebuilt to encode queries for it."""
    kind, params = spec.encoder.kind, spec.encoder.params
    if spec.space == TEXT:
        from mmrag.models.text import load_text_encoder

        encoder = load_text_encoder(kind, **params)
    elif spec.space == IMAGE_TEXT:
        from mmrag.models.image import image_encoder_from_info

        return image_encoder_from_info(spec.identity)  # checks the identity itself
    elif spec.space == AUDIO_TEXT:
        from mmrag.models.clap import audio_encoder_from_info

        return audio_encoder_from_info(spec.identity)
    else:
        from mmrag.models.page_encoders import load_page_encoder

        encoder = load_page_encoder(kind, **params)
    if encoder.dim != spec.dim:
        raise ConfigError(
            f"the {kind} encoder rebuilt for this field makes {encoder.dim}-dim vectors; "
            f"the field holds {spec.dim}-dim ones (its model changed since indexing)"
        )
    return encoder
