"""`mmrag eval audio` and `mmrag eval video` on small real subsets, through typer."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from mmrag.cli.eval_media_cmd import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_eval_audio_fsdd_writes_precision_per_digit(data_dir, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MMRAG_CACHE", str(cache_dir))
    out = tmp_path / "fsdd.json"
    args = ["audio", "fsdd", str(data_dir / "fsdd"), "--limit", "1", "--retriever", "bm25"]
    result = CliRunner().invoke(_app(), [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["recordings"] == 10
    assert set(scores["bm25"]["p@10_word"]) == {
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    }
    # one recording per digit: p@10 is 0 or 0.1; tiny.en reads "7" and "one" right here
    assert scores["bm25"]["p@10_word"]["seven"] == 0.1 and scores["bm25"]["p@10_word"]["one"] == 0.1
    assert all(v <= 0.1 for v in scores["bm25"]["p@10_word"].values())


def test_eval_audio_esc50_writes_map(data_dir, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MMRAG_CACHE", str(cache_dir))
    out = tmp_path / "esc.json"
    args = ["audio", "esc50", str(data_dir / "esc50"), "--limit", "6", "--retriever", "dense"]
    result = CliRunner().invoke(_app(), [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["clips"] == 6 and 0.0 <= scores["dense"]["map"] <= 1.0
    assert {"map_name", "map_description"} <= set(scores["dense"])


def test_eval_audio_unknown_dataset_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(_app(), ["audio", "librispeech", str(tmp_path)])
    assert result.exit_code == 2 and "unknown audio dataset" in result.output


def test_eval_video_on_one_constructed_clip(data_dir, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MMRAG_CACHE", str(cache_dir))
    out = tmp_path / "video.json"
    args = ["video", str(data_dir / "flickr8k"), "--clips", "1", "--retriever", "text"]
    result = CliRunner().invoke(_app(), [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    assert scores["data"].startswith("constructed") and scores["queries"] == 6
    # within one clip every hit is from the right clip; the spoken caption finds its span
    assert scores["text"]["narration_clip_r@1"] == 1.0
    assert scores["text"]["narration_span_r@1"] >= 2 / 3
