"""Every loader, fed damaged real files: each input loads or fails with a reason.

The seeds are real files (tests/fuzz/seeds.py); hypothesis flips, truncates, splices and
corrupts them (tests/fuzz/mutate.py). A loader may refuse any input with IngestError;
any other exception, or a "success" that holds nothing, fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from mmrag.errors import IngestError
from tests.fuzz.mutate import mutants
from tests.fuzz.seeds import seeds
from tests.fuzz.targets import check_loaded, run, targets, write_input

TARGETS = targets()
# Examples per loader: about 30 s for all of them on a busy 2-core machine. Audio runs
# Whisper on whatever still decodes, so it gets few.
EXAMPLES = {
    "text": 300,
    "markdown": 300,
    "html": 300,
    "jsonl": 300,
    "beir": 150,
    "pdf": 300,
    "pdf_pages": 150,
    "image": 400,
    "video": 200,
    "audio": 12,
}
CRASHES = Path(__file__).parent / "crashes"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_a_damaged_file_loads_or_fails_with_a_reason(name, data_dir, tmp_path_factory):
    target = TARGETS[name]
    folder = tmp_path_factory.mktemp(name)
    outcomes = {"loaded": 0, "refused": 0}

    @settings(max_examples=EXAMPLES[name])
    @given(mutants(seeds(target.seeds_of, data_dir)))
    def fuzz(data: bytes) -> None:
        loaded = run(target, write_input(target, data, folder, data_dir))
        check_loaded(loaded)
        outcomes["refused" if isinstance(loaded, IngestError) else "loaded"] += 1

    fuzz()
    # Both outcomes occur: the seeds load, and the mutants reach the refusals.
    assert outcomes["loaded"] and outcomes["refused"], outcomes


def test_the_seeds_themselves_load(data_dir, tmp_path):
    """The undamaged seeds load (an encrypted PDF is the one seed refused by design)."""
    for name in ("text", "markdown", "html", "jsonl", "beir", "pdf", "image", "video"):
        target = TARGETS[name]
        for i, data in enumerate(seeds(target.seeds_of, data_dir)):
            loaded = run(target, write_input(target, data, tmp_path / f"{name}{i}", data_dir))
            if isinstance(loaded, IngestError):
                assert "encrypted" in loaded.reason, (name, i, loaded)
            else:
                check_loaded(loaded)


def test_a_video_stream_with_an_unknown_codec_is_refused_with_a_reason():
    """Found by the fuzzer: a flipped byte in the codec tag left a stream without a codec
    context, and probing it raised AttributeError."""
    target = TARGETS["video"]
    loaded = run(target, CRASHES / "video-unknown-codec.mp4")
    assert isinstance(loaded, IngestError)
    assert "neither a video nor an audio track" in loaded.reason
