"""Audio files (.wav .flac .mp3 .ogg .m4a) -> AUDIO documents with time spans.

Audio is decoded by PyAV (any container or codec its FFmpeg reads: the content
decides, not the suffix) to 16 kHz mono. Speech becomes one document per Whisper
segment, with `Span(t_start, t_end)`. Audio without (much) speech becomes one "sound"
document for the whole clip whose text is Whisper's sound tags ("dog barking"), which
text search then finds. Sound vectors (CLAP) are added at index time by
`index.audio_embedder.AudioFieldEmbedder`, which reads the file named in `media`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mmrag.errors import ConfigError
from mmrag.ingest.files import AUDIO_SUFFIXES, Loaded, Loader, RawFile
from mmrag.ingest.spoken_numbers import (
    DIGIT_SPELLINGS,
    number_reading,
    number_word,
    reading_aliases,
    with_number_aliases,
)
from mmrag.media.decode import MAX_SECONDS, DecodedAudio, decode_audio
from mmrag.models.whisper import SAMPLE_RATE, Transcript, WhisperTranscriber
from mmrag.types import Document, Modality, Span

# A clip is also tagged when Whisper heard no words, or doubts there is speech, or heard
# fewer than MIN_SPEECH_WORDS distinct words in a clip of at least SHORT seconds: a cow's
# moo read as "Oh" or laughter read as "Oh, oh, oh, oh" is not speech worth indexing
# alone, while a one-second clip with one word is a spoken word (FSDD) and needs no
# second pass.
MIN_SPEECH_WORDS = 3
SHORT = 2.0
NO_SPEECH = 0.5
# A clip this short with at most this many words may be one spoken number, which Whisper
# without context often writes as a homophone ("to.", "for.") or a near miss ("tool.").
UTTERANCE_SECONDS = 2.0
UTTERANCE_WORDS = 2
__all__ = ["AUDIO_SUFFIXES", "load_audio", "make_audio_loader", "transcript_documents"]


def _needs_tags(transcript: Transcript) -> bool:
    spoken = [s for s in transcript.segments if not s.is_tag]
    if not spoken:
        return True
    words = len({w.strip(".,!?;:").lower() for s in spoken for w in s.text.split()})
    doubt = sum(s.no_speech_prob for s in spoken) / len(spoken)
    return doubt > NO_SPEECH or (words < MIN_SPEECH_WORDS and transcript.duration >= SHORT)


def _is_utterance(transcript: Transcript) -> bool:
    spoken = [s for s in transcript.segments if not s.is_tag]
    words = sum(len(s.text.split()) for s in spoken)
    return (
        transcript.language == "en"
        and transcript.duration <= UTTERANCE_SECONDS
        and len(spoken) <= 1
        and words <= UTTERANCE_WORDS
    )


def with_number_reading(
    docs: list[Document],
    source_id: str,
    source: str,
    audio: DecodedAudio,
    transcriber: WhisperTranscriber,
) -> list[Document]:
    """For a lone short utterance, add the digit it may be (see spoken_numbers.number_reading)
    to its speech document, or make one when Whisper wrote nothing."""
    tokens = [transcriber.first_token_ids(spellings) for spellings in DIGIT_SPELLINGS]
    digit = number_reading(transcriber.first_token_logprobs(audio.samples), tokens)
    if digit is None:
        return docs
    speech = [d for d in docs if d.metadata.get("kind") == "speech"]
    if speech:
        doc = speech[0]
        extra = reading_aliases(doc.metadata.get("transcript", doc.text), digit)
        text = f"{doc.text} [{' '.join(extra)}]" if extra else doc.text
        changed = replace(doc, text=text, metadata={**doc.metadata, "reading": digit})
        return [changed if d is doc else d for d in docs]
    reading = Document(
        id=f"{source_id}#t=0.00-{audio.duration:.2f}",
        text=f"[{number_word(digit)} {digit}]",
        modality=Modality.AUDIO,
        source_id=source_id,
        source=source,
        media=source,
        span=Span(t_start=0.0, t_end=round(audio.duration, 2)),
        metadata={"kind": "speech", "language": "en", "transcript": "", "reading": digit},
    )
    return [reading, *docs]


def transcript_documents(
    source_id: str,
    source: str,
    transcript: Transcript,
    modality: Modality = Modality.AUDIO,
    metadata: dict[str, Any] | None = None,
) -> list[Document]:
    """One document per speech segment, its text with numbers spelled both ways (English)."""
    docs = []
    for seg in transcript.segments:
        if seg.is_tag:
            continue  # a stray "(music)" inside speech is not a passage to read
        text = with_number_aliases(seg.text) if transcript.language == "en" else seg.text
        docs.append(
            Document(
                id=f"{source_id}#t={seg.start:.2f}-{seg.end:.2f}",
                text=text,
                modality=modality,
                source_id=source_id,
                source=source,
                media=source,
                span=Span(t_start=round(seg.start, 2), t_end=round(seg.end, 2)),
                metadata={
                    "kind": "speech",
                    "language": transcript.language,
                    "transcript": seg.text,
                    **(metadata or {}),
                },
            )
        )
    return docs


def sound_document(
    source_id: str,
    source: str,
    tags: list[tuple[str, float]] | None,
    duration: float,
    metadata: dict[str, Any],
) -> Document:
    """The whole clip as one document, described by Whisper's n best sound tags, best
    first (an untagged clip keeps an empty text: a sound encoder may still embed it)."""
    names = [tag for tag, _ in tags or []]
    return Document(
        id=f"{source_id}#sound",
        text="; ".join(names),
        modality=Modality.AUDIO,
        source_id=source_id,
        source=source,
        media=source,
        span=Span(t_start=0.0, t_end=round(duration, 2)),
        metadata={
            "kind": "sound",
            "tags": names,
            "tag_scores": [round(score, 3) for _, score in tags or []],
            **metadata,
        },
    )


def audio_documents(
    source_id: str,
    source: str,
    audio: DecodedAudio,
    transcriber: WhisperTranscriber,
    language: str | None = None,
    tags: bool = True,
) -> tuple[list[Document], dict[str, Any]]:
    """Speech segments and/or a sound document for decoded audio, and file metadata."""
    transcript = transcriber.transcribe(audio.samples, language=language)
    meta: dict[str, Any] = {
        "duration": round(audio.duration, 3),
        "language": transcript.language,
        "asr": transcriber.name,
    }
    if audio.truncated:
        meta["truncated"] = True
    if audio.cut:
        meta["cut_at"] = round(audio.duration, 3)  # the rest is past the length limit
    docs = transcript_documents(source_id, source, transcript)
    if _is_utterance(transcript):
        docs = with_number_reading(docs, source_id, source, audio, transcriber)
    if _needs_tags(transcript):
        tagged = transcriber.tag_candidates(audio.samples) if tags else None
        docs.append(
            sound_document(source_id, source, tagged, audio.duration, {"asr": transcriber.name})
        )
    return docs, meta


class LazyTranscriber:
    """Load Whisper on the first file, not when the loader is registered."""

    def __init__(self, transcriber: WhisperTranscriber | str) -> None:
        self._value = transcriber if isinstance(transcriber, WhisperTranscriber) else None
        self._name = transcriber if isinstance(transcriber, str) else transcriber.name

    def get(self) -> WhisperTranscriber:
        if self._value is None:
            self._value = WhisperTranscriber(self._name)
        return self._value


def make_audio_loader(
    transcriber: WhisperTranscriber | str = "tiny.en",
    language: str | None = None,
    tags: bool = True,
    max_seconds: float | None = MAX_SECONDS,
) -> Loader:
    """A loader with its own settings, for a loader table's AUDIO_SUFFIXES
    (`indexing.build.loader_table` makes one from an IndexConfig).

    `transcriber`: a Whisper name ("tiny.en", "base"), path or hub id, or a loaded one;
    `language`: force a language instead of detecting it; `tags`: describe non-speech;
    `max_seconds`: how much of a file is decoded and indexed (the rest is noted as cut).
    """
    if not isinstance(transcriber, (str, WhisperTranscriber)):
        raise ConfigError(
            f"transcriber must be a Whisper name or WhisperTranscriber, not {transcriber!r}"
        )
    whisper = LazyTranscriber(transcriber)

    def load(raw: RawFile) -> Loaded:
        audio = decode_audio(raw.data, SAMPLE_RATE, name=str(raw.path), max_seconds=max_seconds)
        source_id = str(raw.path)
        docs, meta = audio_documents(source_id, str(raw.path), audio, whisper.get(), language, tags)
        meta["title"] = raw.path.stem
        source = raw.source(raw.path.stem, [], meta)
        return Loaded([replace(source, media=docs)])

    return load


def load_audio(raw: RawFile) -> Loaded:
    """The default audio loader (Whisper tiny.en, tags on), registered in files.py."""
    global _default
    if _default is None:
        _default = make_audio_loader()
    return _default(raw)


_default: Loader | None = None
