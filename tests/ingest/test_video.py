"""Video: shots, keyframes, meanP shot vectors, transcripts, thumbnails in the store, and
partial files. Clips are constructed (Flickr8k photos + espeak-ng narration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import IngestError
from mmrag.eval.constructed_video import build_clip
from mmrag.ingest.files import load
from mmrag.ingest.shots import cut_positions, detect_shots, frame_signature
from mmrag.ingest.video_loader import make_video_loader
from mmrag.types import Modality


@pytest.fixture(scope="module")
def lit():
    from mmrag.models.image import load_image_encoder

    return load_image_encoder("lit")


def _shots(source):
    return [d for d in source.media if d.modality is Modality.VIDEO]


def test_shots_follow_the_photos_and_carry_the_narration(narrated_clip, narrations):
    (source,) = load(narrated_clip.path).sources
    shots = _shots(source)
    assert len(shots) == len(narrated_clip.parts) == 3
    for shot, part, narration in zip(shots, narrated_clip.parts, narrations, strict=True):
        assert shot.span.t_start == pytest.approx(part.t_start, abs=0.3)
        assert shot.span.t_end == pytest.approx(part.t_end, abs=0.3)
        # the transcript heard during the shot is (mostly) its own narration
        said = set(shot.text.lower().split())
        assert len(said & set(narration.lower().split())) >= 3, (shot.text, narration)
        # ...and not the next one's: a sentence that spills over stays with its shot
        own = len(said & set(narration.lower().split()))
        assert all(
            len(said & set(n.lower().split())) < own for n in narrations if n != narration
        ), shot.text
        assert shot.metadata["keyframes"] and all("t" in k for k in shot.metadata["keyframes"])
    speech = [d for d in source.media if d.modality is Modality.AUDIO]
    assert speech and all(d.span.t_end <= source.metadata["duration"] + 0.05 for d in speech)
    assert source.metadata["has_audio"] and source.metadata["shots"] == 3


def test_shot_detection_on_signatures():
    rng = np.random.default_rng(0)
    from PIL import Image

    a = Image.fromarray(rng.integers(0, 80, (48, 64, 3), dtype=np.uint8))
    b = Image.fromarray(rng.integers(150, 255, (48, 64, 3), dtype=np.uint8))
    signatures = np.stack([frame_signature(x) for x in (a, a, a, b, b, b, b, a)])
    assert cut_positions(signatures) == [3, 7]
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    shots = detect_shots(times, signatures, 4.0, keyframe_every=1.0)
    assert [(s.start, s.end) for s in shots] == [(0.0, 1.5), (1.5, 3.5), (3.5, 4.0)]
    assert all(s.keyframes for s in shots)
    assert all(times[k] >= s.start and times[k] < s.end for s in shots for k in s.keyframes)
    # a flash shorter than min_length does not make a shot of its own
    flash = np.stack([frame_signature(x) for x in (a, a, a, b, a, a, a, a)])
    assert cut_positions(flash) == [3, 4]
    kept = detect_shots(times, flash, 4.0, min_length=1.0)
    assert [(s.start, s.end) for s in kept] == [(0.0, 1.5), (1.5, 4.0)]


def test_keyframes_are_spread_uniformly_over_a_shot():
    from mmrag.ingest.shots import keyframes_in

    times = [i * 0.25 for i in range(41)]  # a 10 s shot sampled 4 times a second
    picked = keyframes_in(times, 0, len(times), every=2.0)
    assert [times[i] for i in picked] == [1.0, 3.0, 5.0, 7.0, 9.0]  # centres of 5 parts
    assert keyframes_in(times, 8, 10, every=2.0) == (8,)  # a short shot: one, its middle


def test_a_sentence_belongs_to_the_shot_it_is_mostly_in():
    from mmrag.ingest.shots import Shot
    from mmrag.ingest.video_loader import said_during

    first, second = Shot(0, 0.0, 3.2, (0,)), Shot(1, 3.2, 7.6, (1,))
    # spills 0.2 s back into the first shot: it is the second shot's
    assert not said_during(first, 3.0, 7.0) and said_during(second, 3.0, 7.0)
    # one long sentence over both shots describes both
    assert said_during(first, 0.0, 20.0) and said_during(second, 0.0, 20.0)
    assert not said_during(second, 0.0, 3.2)  # touching is not overlapping


def test_indexed_shots_are_found_by_caption_with_their_time_span(
    narrated_clip, tmp_path, lit, data_dir
):
    from mmrag.index.store import EmbeddedStore
    from mmrag.index.video_embedder import ShotFieldEmbedder, keyframe_images
    from mmrag.indexing.build import loader_table
    from mmrag.indexing.config import IndexConfig
    from mmrag.indexing.indexer import Indexer
    from mmrag.retrieve.crossmodal import CrossModalRetriever
    from mmrag.retrieve.sparse import BM25Retriever

    store_dir = tmp_path / "store"
    with EmbeddedStore(store_dir, create=True) as store:
        # the loaders `mmrag index` uses: thumbnails go to the store's media/ folder
        loaders = loader_table(IndexConfig(), store.media_root)
        indexer = Indexer(
            store, embedders=[ShotFieldEmbedder(lit)], loaders=loaders, progress=False
        )
        report = indexer.index_paths([narrated_clip.path])
        assert not report.errors and report.added == 1
        shots = sorted(
            (d for _, d in store.iter_documents() if d.modality is Modality.VIDEO),
            key=lambda d: d.span.t_start,
        )
        # thumbnails live inside the store
        for shot in shots:
            for k in shot.metadata["keyframes"]:
                assert Path(k["thumbnail"]).is_relative_to(store_dir / "media")
                assert Path(k["thumbnail"]).is_file()
        # meanP: the stored vector is the normalised mean of the keyframes' vectors
        ref = []
        for images in keyframe_images(shots):
            v = lit.encode_images(images).mean(axis=0)
            ref.append(v / np.linalg.norm(v))
        found = CrossModalRetriever(store, "image", modalities=(Modality.VIDEO,))
        for shot, r in zip(shots, ref, strict=True):
            (scored,) = store.search_dense("image", r[None, :], 1, None)
            assert scored[0][0].id == shot.id and scored[0][1] == pytest.approx(1.0, abs=1e-3)
        # a caption that was not spoken (the photo's second caption) finds the photo's
        # shot through the image space; the spoken one through the transcript
        part = narrated_clip.parts[2]  # the ice climber
        top = found.retrieve("an ice climber scaling a frozen ice wall", 1).hits[0].doc
        assert top.span.t_start == pytest.approx(part.t_start, abs=0.3)
        spoken = BM25Retriever(store).retrieve("ice picks and crampons", 1).hits[0].doc
        assert spoken.group == str(narrated_clip.path.resolve())
        assert spoken.span.t_start < part.t_end and spoken.span.t_end > part.t_start


def test_video_without_audio_gives_shots_only(silent_clip):
    (source,) = load(silent_clip.path).sources
    assert len(_shots(source)) == 3 and all(d.modality is Modality.VIDEO for d in source.media)
    assert not source.metadata["has_audio"] and all(not d.text for d in source.media)


def test_audio_only_mp4_gives_its_transcript(tmp_path, data_dir):
    from mmrag.eval.constructed_video import speak
    from tests.av_fixtures import write_audio

    path = write_audio(
        tmp_path / "voice.mp4", speak("The weather is sunny today."), 16_000, "aac", "mp4"
    )
    (source,) = load(path).sources
    assert not source.metadata["has_video"] and source.metadata["has_audio"]
    assert source.media and all(d.modality is Modality.AUDIO for d in source.media)
    assert "sunny" in " ".join(d.text.lower() for d in source.media)


def test_webm_clip_and_a_truncated_one(tmp_path, clip_images, narrations):
    clip = build_clip(clip_images[:2], narrations[:2], tmp_path / "two.webm")
    loader = make_video_loader(transcriber=None)  # frames only: fast
    from mmrag.ingest.files import read_raw

    (source,) = loader(read_raw(clip.path)).sources
    assert len(_shots(source)) == 2
    data = clip.path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    try:
        (partial,) = loader(read_raw(cut)).sources
        assert 1 <= len(_shots(partial)) <= 2  # what decoded before the cut
    except IngestError as exc:
        assert "cut.webm" in str(exc)


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_other_containers_load_through_the_normal_path(tmp_path, clip_images, suffix):
    clip = build_clip(clip_images[:2], None, tmp_path / f"silent{suffix}")
    (source,) = load(clip.path).sources
    assert len(_shots(source)) == 2 and source.metadata["suffix"] == suffix
    assert [d.span.t_start for d in _shots(source)] == [0.0, pytest.approx(2.0, abs=0.3)]


def test_corrupt_and_lying_video_files_are_per_file_errors(tmp_path, narrated_clip, data_dir):
    from mmrag.ingest.files import scan

    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mkv").write_text("hello")
    (tmp_path / "junk.mov").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    (tmp_path / "image.webm").write_bytes(
        (data_dir / "flickr8k" / "images" / "1001773457_577c3a7d70.jpg").read_bytes()
    )
    sources, errors = scan([tmp_path])
    failed = {Path(e.path).name: e.reason for e in errors}
    assert set(failed) == {"zero.mp4", "text.mkv", "junk.mov", "image.webm"}
    assert failed["zero.mp4"] == "empty file" and "JPEG" in failed["image.webm"]
    assert "junk.mov" in failed and not sources
