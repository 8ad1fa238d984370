"""CLAP audio–text dual encoder through `transformers` (ClapModel), by hub id or local path,
e.g. "laion/clap-htsat-unfused".

Audio and text are embedded into one space as unit-length float32 rows, so a text query
finds sounds ("a dog barking") by cosine similarity. No CLAP model is packaged anywhere
we could find, so there is no offline default: the offline way to search sounds here is
Whisper's sound tags (see models/whisper.py, ingest/audio_loader.py).

`info()` identifies the space for the store; it has no "params" key on purpose: the
multimodal retriever treats fields with "params" as image–text fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.models.image import as_texts, batched
from mmrag.models.resolve import loading, resolve_model
from mmrag.models.text import normalise
from mmrag.registry import require


def _pooled(output: Any) -> Any:
    """transformers 5 returns an output whose pooler_output is the projection; 4.x the tensor."""
    return output if hasattr(output, "shape") else output.pooler_output


@lru_cache(maxsize=2)
def _load(path: str, device: str) -> tuple[Any, Any, Any]:
    require("torch", "torch")
    transformers = require("transformers", "torch")
    model = transformers.ClapModel.from_pretrained(path)
    model.eval().to(device)
    features = transformers.AutoFeatureExtractor.from_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return model, features, tokenizer


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy) when the rates differ."""
    if rate == target:
        return samples
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


class ClapEncoder:
    """Audio and texts into CLAP's joint space."""

    kind = "clap"

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.name = model
        self.device = device
        path = resolve_model(model)
        with loading(model, path):
            self._model, self._features, self._tokenizer = _load(path, device)
        self.sampling_rate = int(self._features.sampling_rate)
        dim = getattr(self._model.config, "projection_dim", None)
        if not isinstance(dim, int):
            raise ConfigError(f"{model!r} does not declare its embedding dimension")
        self.dim = dim

    def info(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.name, "dim": self.dim, "space": "audio-text"}

    def __repr__(self) -> str:
        return f"ClapEncoder({self.name!r}, dim={self.dim})"

    def _run_audio(self, waveforms: list[np.ndarray]) -> np.ndarray:
        import torch

        inputs = self._features(
            waveforms, sampling_rate=self.sampling_rate, return_tensors="pt"
        ).to(self.device)
        kwargs = {"input_features": inputs["input_features"]}
        if "is_longer" in inputs:
            kwargs["is_longer"] = inputs["is_longer"]
        with torch.inference_mode():
            out = _pooled(self._model.get_audio_features(**kwargs))
        return out.float().cpu().numpy()

    def encode_audio(
        self, waveforms: Sequence[np.ndarray], sampling_rate: int, batch_size: int = 8
    ) -> np.ndarray:
        """(len(waveforms), dim) unit rows for mono float waveforms at `sampling_rate` Hz."""
        if isinstance(waveforms, np.ndarray) and waveforms.ndim == 1:
            raise TypeError("encode_audio() takes a sequence of waveforms; wrap one in a list")
        items = []
        for w in waveforms:
            w = np.asarray(w, dtype=np.float32)
            if w.ndim != 1 or not len(w):
                raise ConfigError("each waveform must be a non-empty 1-D (mono) array")
            items.append(resample(w, sampling_rate, self.sampling_rate))
        # Audio longer than the model's window is cut into windows that are embedded and
        # averaged: the feature extractor would otherwise pick random crops
        # ("rand_trunc", "fusion"), and the same file would get a different vector each time.
        window = int(self._features.nb_max_samples)
        pieces, owner = [], []
        for i, w in enumerate(items):
            for start in range(0, len(w), window):
                if start == 0 or len(w) - start >= window // 4:  # a short tail adds little
                    pieces.append(w[start : start + window])
                    owner.append(i)
        vectors = np.empty((len(pieces), self.dim), dtype=np.float32)
        for start in range(0, len(pieces), batch_size):
            part = pieces[start : start + batch_size]
            vectors[start : start + len(part)] = self._run_audio(part)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        np.add.at(out, np.asarray(owner), normalise(vectors))
        return normalise(out)

    def _run_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        limit = self._model.config.text_config.max_position_embeddings - 2  # RoBERTa offset
        tokens = self._tokenizer(
            texts, padding=True, truncation=True, max_length=limit, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            out = _pooled(
                self._model.get_text_features(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                )
            )
        return out.float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return batched(as_texts(texts), batch_size, self._run_texts, self.dim)


AUDIO_ENCODERS = {"clap": ClapEncoder}


def load_audio_encoder(kind: str = "clap", **params: Any) -> ClapEncoder:
    """An audio–text encoder by name; "clap" needs `model` (hub id or path)."""
    if kind not in AUDIO_ENCODERS:
        raise ConfigError(f"unknown audio encoder {kind!r}; choose one of {sorted(AUDIO_ENCODERS)}")
    try:
        return AUDIO_ENCODERS[kind](**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for audio encoder {kind!r}: {exc}") from exc


def audio_encoder_from_info(info: dict[str, Any]) -> ClapEncoder:
    """Rebuild the encoder an audio field was built with, from the field's stored info."""
    if info.get("space") != "audio-text" or "model" not in info:
        raise ConfigError(f"not an audio encoder record: {info}")
    encoder = load_audio_encoder(info["kind"], model=info["model"])
    if encoder.info() != info:
        raise ConfigError(f"the audio encoder rebuilt from {info} identifies as {encoder.info()}")
    return encoder
