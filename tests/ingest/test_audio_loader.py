"""Audio files -> AUDIO documents: formats, spans, sound tags, and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import IngestError
from mmrag.ingest.files import ContentKind, load, scan, sniff
from mmrag.ingest.spoken_numbers import number_aliases, with_number_aliases
from mmrag.media.decode import decode_audio
from mmrag.types import Modality
from tests.av_fixtures import write_audio

SEVEN = "7_george_0.wav"
LAUGHING = "4-132803-A-26.flac"


@pytest.fixture(scope="module")
def seven(data_dir) -> Path:
    return data_dir / "fsdd" / "recordings" / SEVEN


def test_speech_becomes_a_timestamped_audio_document(seven):
    (source,) = load(seven).sources
    speech = [d for d in source.media if d.metadata["kind"] == "speech"]
    assert len(speech) == 1
    doc = speech[0]
    assert doc.modality is Modality.AUDIO and doc.media == str(seven.resolve())
    # Whisper writes the digit or the word depending on the CPU's int8 kernels; either
    # way the document holds both spellings, for "7" and for "seven" queries
    assert doc.text in ("7. [seven]", "seven. [7]")
    assert doc.span.t_start == 0.0 and 0 < doc.span.t_end <= source.metadata["duration"] + 0.01
    assert source.metadata["language"] == "en" and source.metadata["asr"] == "tiny.en"


def test_non_speech_becomes_a_sound_document_with_tags(data_dir):
    (source,) = load(data_dir / "esc50" / "audio" / LAUGHING).sources
    sound = [d for d in source.media if d.metadata["kind"] == "sound"]
    assert len(sound) == 1 and "laugh" in sound[0].text
    assert sound[0].span.t_start == 0.0 and sound[0].span.t_end == pytest.approx(5.0, abs=0.05)


@pytest.mark.parametrize(
    ("suffix", "codec", "container"),
    [(".mp3", "libmp3lame", "mp3"), (".ogg", "libopus", "ogg"), (".m4a", "aac", "ipod")],
)
def test_compressed_formats_decode_to_the_same_speech(seven, tmp_path, suffix, codec, container):
    samples = decode_audio(seven, 16_000).samples
    rate = 48_000 if codec == "libopus" else 16_000
    if rate != 16_000:
        samples = np.repeat(samples, 3)  # 16 kHz -> 48 kHz by sample repetition
    path = write_audio(tmp_path / f"seven{suffix}", samples, rate, codec, container)
    decoded = decode_audio(path)
    assert decoded.rate == 16_000 and abs(decoded.duration - 0.64) < 0.2  # AAC adds priming
    (source,) = load(path).sources
    assert any("seven" in d.text.lower() for d in source.media)


def test_wav_decodes_to_the_samples_the_standard_library_reads(seven):
    """PyAV at the file's own rate against Python's `wave` module: the same samples."""
    import wave

    with wave.open(str(seven)) as w:
        rate = w.getframerate()
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        ref = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768.0
    ours = decode_audio(seven, rate)
    assert ours.rate == rate == 8_000 and not ours.truncated
    np.testing.assert_allclose(ours.samples, ref, atol=1e-6)
    # at 16 kHz (what Whisper reads) the clip keeps its length
    assert len(decode_audio(seven).samples) == pytest.approx(2 * len(ref), abs=2)


def test_flac_decodes_like_the_same_audio_as_wav(data_dir, tmp_path):
    """A FLAC clip and its lossless re-encoding as 16-bit WAV decode alike."""
    from tests.av_fixtures import write_audio

    flac = decode_audio(data_dir / "esc50" / "audio" / LAUGHING)
    assert flac.duration == pytest.approx(5.0, abs=0.01)
    wav = write_audio(tmp_path / "same.wav", flac.samples, 16_000, "pcm_s16le", "wav")
    np.testing.assert_allclose(decode_audio(wav).samples, flac.samples, atol=1 / 32768 + 1e-6)


def test_sniffing_of_media_kinds(seven, data_dir):
    assert sniff(seven.read_bytes()[:64]) is ContentKind.WAV
    assert sniff((data_dir / "esc50" / "audio" / LAUGHING).read_bytes()[:64]) is ContentKind.FLAC
    assert sniff(b"\x1a\x45\xdf\xa3\x01\x00\x00\x00") is ContentKind.MATROSKA
    assert sniff(b"\xff\xfb\x90\x44\x00\x00") is ContentKind.MP3  # MPEG frame, no ID3
    assert sniff("ünïcode".encode("utf-16")) is ContentKind.TEXT  # FF FE BOM is not MP3


def test_bad_audio_files_are_clear_errors_and_do_not_stop_a_batch(seven, data_dir, tmp_path):
    good = tmp_path / "good.wav"
    shutil.copy(seven, good)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.mp3").write_text("this is not audio at all\n")
    shutil.copy(
        data_dir / "flickr8k" / "images" / "1001773457_577c3a7d70.jpg", tmp_path / "photo.wav"
    )
    data = seven.read_bytes()
    (tmp_path / "corrupt.wav").write_bytes(data[:44] + bytes(range(256)) * 4)  # header, noise
    (tmp_path / "garbage.flac").write_bytes(b"fLaC\x00" + np.random.default_rng(0).bytes(4000))
    # a FLAC named .wav: the content decides, it loads
    shutil.copy(data_dir / "esc50" / "audio" / LAUGHING, tmp_path / "lying.wav")
    sources, errors = scan([tmp_path])
    loaded = {Path(s.path).name for s in sources}
    failed = {Path(e.path).name: e.reason for e in errors}
    assert {"good.wav", "lying.wav"} <= loaded
    assert failed["empty.wav"] == "empty file"
    assert "not" in failed["notes.mp3"] and "plain text" in failed["notes.mp3"]
    assert "JPEG" in failed["photo.wav"]
    assert "garbage.flac" in failed
    # noise after a valid WAV header is valid PCM: it loads, as the 1024 bytes that are there
    # (512 16-bit samples at 8 kHz), though the header promises more
    assert "corrupt.wav" in loaded and "corrupt.wav" not in failed
    (corrupt,) = [s for s in sources if Path(s.path).name == "corrupt.wav"]
    assert corrupt.metadata["duration"] == pytest.approx(512 / 8_000, abs=1e-3)
    assert "truncated" not in corrupt.metadata  # the stream ends cleanly where the file does


def test_truncated_audio_keeps_what_decodes(data_dir, tmp_path):
    data = (data_dir / "esc50" / "audio" / LAUGHING).read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    decoded = decode_audio(cut)
    assert 1.0 < decoded.duration < 4.5  # about half of the 5 s clip
    (source,) = load(cut).sources
    assert source.metadata["duration"] < 4.5


def test_audio_without_an_audio_stream_is_refused(silent_clip, tmp_path):
    with pytest.raises(IngestError, match="no audio track"):
        decode_audio(silent_clip.path)


def test_number_aliases():
    assert number_aliases("7.") == ["seven"]
    assert number_aliases("Zero. Twenty-one, 42") == ["0", "21", "forty-two"]
    assert number_aliases("I have 1000 dogs") == []
    assert with_number_aliases("no numbers") == "no numbers"
    assert number_aliases("To.") == ["two", "2"]  # a lone homophone is the number
    assert number_aliases("Go to school") == []


def test_sound_likelihood_search_finds_the_laughing_clip(data_dir, tmp_path, whisper):
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer
    from mmrag.retrieve.audio import SoundLikelihoodRetriever
    from mmrag.retrieve.base import Retriever, to_ranked
    from mmrag.types import StageReport

    class EverySoundLast(Retriever):
        """A first stage that proposes every whole-clip sound, the laughing one last."""

        def __init__(self, store):
            self.store = store

        def retrieve_many(self, queries, k=10):
            docs = [d for _, d in self.store.iter_documents() if d.metadata["kind"] == "sound"]
            docs.sort(key=lambda d: LAUGHING in d.id)
            return [
                to_ranked(q, [(d, 0.0) for d in docs], StageReport("retrieve", "all"))
                for q in queries
            ]

    names = [LAUGHING, "2-104105-B-19.flac", "2-104877-A-3.flac", "4-107117-A-33.flac"]
    files = [data_dir / "esc50" / "audio" / n for n in names]
    with EmbeddedStore(tmp_path / "store", create=True) as store:
        Indexer(store, None, progress=False).index_paths(files)
        r = SoundLikelihoodRetriever(store, EverySoundLast(store), whisper, depth=10)
        hits = r.retrieve("people laughing", 4).hits
        assert len(hits) == 4 and hits[0].doc.group == str(files[0].resolve())
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        # only the first `depth` are rescored; deeper first-stage hits follow in order
        shallow = SoundLikelihoodRetriever(store, EverySoundLast(store), whisper, depth=2)
        hits = shallow.retrieve("people laughing", 4).hits
        first = EverySoundLast(store).retrieve("people laughing", 4).hits
        assert [h.doc.id for h in hits[2:]] == [h.doc.id for h in first[2:]]
        assert {h.doc.id for h in hits[:2]} == {h.doc.id for h in first[:2]}
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_lone_digit_misheard_as_a_word_is_still_read_as_the_digit(data_dir):
    # tiny.en writes "tool." for this "two": its first-word odds make it a two as well
    (source,) = load(data_dir / "fsdd" / "recordings" / "2_george_1.wav").sources
    (speech,) = [d for d in source.media if d.metadata["kind"] == "speech"]
    assert speech.metadata["transcript"] == "tool." and speech.metadata["reading"] == 2
    assert speech.text == "tool. [two 2]"


def test_a_short_word_that_is_no_number_gets_no_reading(tmp_path):
    from mmrag.eval.constructed_video import speak
    from tests.av_fixtures import write_audio

    path = write_audio(tmp_path / "hello.wav", speak("hello"), 16_000, "pcm_s16le", "wav")
    (source,) = load(path).sources
    (speech,) = [d for d in source.media if d.metadata["kind"] == "speech"]
    assert "reading" not in speech.metadata and "hello" in speech.text.lower()
    assert not any(ch.isdigit() for ch in speech.text)


def test_number_reading_weighs_all_spellings_of_a_digit_together():
    from mmrag.ingest.spoken_numbers import number_reading

    logp = np.log(np.full(21, 1e-4))
    tokens = [[i, i + 10] for i in range(10)]  # two spellings per digit
    logp[20] = np.log(0.3)  # the word Whisper wrote ("tool")
    logp[[2, 12]] = np.log(0.12)  # "two" and "Two": 0.24 together
    assert number_reading(logp, tokens, margin=0.5) == 2
    assert number_reading(logp, tokens, margin=0.1) is None  # 0.24 < 0.3 * e**-0.1
    logp[[2, 12]] = np.log(1e-4)
    assert number_reading(logp, tokens) is None  # no digit comes close
