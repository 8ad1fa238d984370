"""CLAP by path on a tiny random checkpoint the test builds: outputs equal to the
transformers reference; the audio field and text -> sound search through a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmrag.errors import ConfigError
from mmrag.media.decode import decode_audio
from mmrag.models.clap import ClapEncoder, audio_encoder_from_info, load_audio_encoder
from tests.models.tiny_clap import build_tiny_clap

CLIPS = ("4-132803-A-26.flac", "2-104105-B-19.flac")


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    return build_tiny_clap(tmp_path_factory.mktemp("tiny-clap"))


def test_outputs_equal_the_transformers_reference(tiny_clap, data_dir):
    from transformers import ClapFeatureExtractor, ClapModel

    encoder = load_audio_encoder("clap", model=str(tiny_clap))
    assert isinstance(encoder, ClapEncoder) and encoder.dim == 16
    model = ClapModel.from_pretrained(tiny_clap).eval()
    features = ClapFeatureExtractor.from_pretrained(tiny_clap)
    # 1.5 s of real audio: shorter than the model's 2 s window, so one pass each
    waves = [decode_audio(data_dir / "esc50" / "audio" / c, 48_000).samples[:72_000] for c in CLIPS]
    inputs = features(waves, sampling_rate=48_000, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_audio_features(input_features=inputs["input_features"]).pooler_output
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_audio(waves, 48_000), ref, atol=1e-5)

    texts = ["a dog barking", "rain on a roof"]
    from transformers import AutoTokenizer

    tokens = AutoTokenizer.from_pretrained(tiny_clap)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref_t = model.get_text_features(**tokens).pooler_output
    ref_t = torch.nn.functional.normalize(ref_t, dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_texts(texts), ref_t, atol=1e-5)


def test_long_audio_is_embedded_deterministically_by_windows(tiny_clap, data_dir):
    encoder = ClapEncoder(str(tiny_clap))
    five_s = decode_audio(data_dir / "esc50" / "audio" / CLIPS[0], 16_000).samples
    a = encoder.encode_audio([five_s], 16_000)  # resampled to 48 kHz, cut into 2 s windows
    b = encoder.encode_audio([five_s], 16_000)
    np.testing.assert_array_equal(a, b)
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)


def test_audio_field_and_text_to_sound_search(tiny_clap, data_dir, tmp_path):
    from mmrag.index.audio_embedder import span_samples
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing import IndexConfig, build_indexer
    from mmrag.retrieve.audio import AudioTextRetriever

    files = [data_dir / "esc50" / "audio" / c for c in CLIPS]
    config = IndexConfig(
        text_encoder=None, image_encoder=None, audio_encoder="clap", audio_model=str(tiny_clap)
    )
    with EmbeddedStore(tmp_path / "store", create=True) as store:
        build_indexer(store, config).index_paths(files)
        info = store.fields()["audio"]["encoder"]
        assert info["space"] == "audio-text" and "params" not in info
        encoder = audio_encoder_from_info(info)
        hits = AudioTextRetriever(store).retrieve("laughing", 5).hits
        assert {h.doc.group for h in hits} == {str(f.resolve()) for f in files}
        # scores are the cosine of the query and the vector of each document's span
        q = encoder.encode_texts(["laughing"])[0]
        for h in hits:
            wave = decode_audio(h.doc.media, encoder.sampling_rate).samples
            part = span_samples(h.doc, wave, encoder.sampling_rate)
            v = encoder.encode_audio([part], encoder.sampling_rate)[0]
            assert h.score == pytest.approx(float(q @ v), abs=1e-4)


def test_bad_configuration():
    with pytest.raises(ConfigError):
        load_audio_encoder("wav2vec", model="x")
    with pytest.raises(ConfigError):
        audio_encoder_from_info({"kind": "clip", "model": "x", "params": {}})
