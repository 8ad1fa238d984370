"""The CLI on the sample corpus: index, search, ask, info, remove, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "examples" / "corpus"
runner = CliRunner()


def _run(*args: str) -> object:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "store"
    corpus = path.parent / "corpus"
    shutil.copytree(CORPUS, corpus)
    result = _run("index", str(corpus), "--store", str(path))
    assert result.exit_code == 0, result.output
    assert "12 added" in result.output
    return path


def test_reindex_is_idempotent_and_tracks_changes(store: Path) -> None:
    corpus = store.parent / "corpus"
    result = _run("index", str(corpus), "--store", str(store))
    assert "0 added, 0 updated, 12 unchanged" in result.output
    (corpus / "water-cycle.md").write_text("# Water\n\nRain falls on the Atacama desert rarely.\n")
    (corpus / "printing-press.txt").unlink()
    result = _run("index", str(corpus), "--store", str(store), "--prune")
    assert "0 added, 1 updated, 10 unchanged, 1 deleted" in result.output, result.output
    hits = _search(store, "Atacama desert")
    assert hits[0]["citation"].startswith(str(corpus / "water-cycle.md"))
    assert not any("printing-press" in h["citation"] for h in _search(store, "Gutenberg"))
    # Put the corpus back, so the module's other tests see all twelve files.
    for name in ("water-cycle.md", "printing-press.txt"):
        shutil.copy(CORPUS / name, corpus / name)
    result = _run("index", str(corpus), "--store", str(store))
    assert "1 added, 1 updated, 10 unchanged" in result.output, result.output


def _search(store: Path, query: str, *extra: str) -> list[dict]:
    result = _run("search", query, "--store", str(store), "--json", *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


def test_search_finds_the_right_file_with_every_retriever(store: Path) -> None:
    for retriever in ("bm25", "tfidf", "dense", "hybrid"):
        hits = _search(store, "waggle dance of honeybees", "--retriever", retriever, "-k", "3")
        assert "honeybee-waggle-dance.pdf" in hits[0]["citation"], (retriever, hits[0])
        assert "p. " in hits[0]["citation"]  # PDF hits cite their page


def test_chinese_query(store: Path) -> None:
    hits = _search(store, "二十四节气", "--retriever", "bm25")
    assert "solar-terms.zh.md" in hits[0]["citation"]


def test_filter_and_ask(store: Path) -> None:
    query = "the temperature of heat and water"
    everything = _search(store, query, "--retriever", "bm25", "-k", "50")
    assert {".md", ".pdf"} <= {Path(h["citation"].split(" (")[0]).suffix for h in everything}
    hits = _search(store, query, "--filter", "suffix=.pdf", "--retriever", "bm25", "-k", "50")
    assert hits and all(".pdf" in h["citation"] for h in hits)
    result = _run("ask", "Who was Ada Lovelace?", "--store", str(store), "--no-generate")
    assert result.exit_code == 0 and "ada-lovelace.txt" in result.output


def test_ask_answers_with_the_local_model_and_cites(store: Path) -> None:
    result = _run(
        "ask",
        "Who invented the printing press?",
        "--store",
        str(store),
        "--json",
        "--max-tokens",
        "24",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    # Model wording can shift with the machine's thread count,
    # so assert what the pipeline guarantees: it read the right passage, named the inventor
    # from it (the short style may say nothing more), and every citation
    # names a passage it was given.
    assert Path(answer["passages"][0]["source"]).name == "printing-press.txt"
    assert not answer["not_found"] and "gutenberg" in answer["answer"].lower()
    numbers = {p["number"] for p in answer["passages"]}
    assert all(c["number"] in numbers for c in answer["citations"])
    assert [s["stage"] for s in answer["stages"]] == ["retrieve", "rerank", "refine", "generate"]


def test_info_lists_sources(store: Path) -> None:
    result = _run("info", "--store", str(store), "--sources")
    assert result.exit_code == 0
    assert "sourdough-baking.md" in result.output and "sentence-transformers" in result.output


def test_errors_are_one_line(store: Path, tmp_path: Path) -> None:
    cases = [
        ("search", "   ", "--store", str(store)),
        ("search", "x", "--store", str(tmp_path / "nope")),
        ("search", "x", "--store", str(store), "--retriever", "nonsense"),
        ("search", "x", "--store", str(store), "--filter", "{bad json"),
        ("search", "x", "--store", str(store), "--filter", '{"a": {"$regex": 1}}'),
    ]
    for args in cases:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert "error:" in result.output


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Kites\n\nA kite flies on the wind's lift.\n")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "fake.pdf").write_text("not really a pdf")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 4)
    result = runner.invoke(
        app, ["index", str(folder), "--store", str(tmp_path / "s"), "--no-dense"]
    )
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output and "3 failed" in result.output
    for name in ("empty.txt", "fake.pdf", "binary.txt"):
        assert name in result.output


def test_eval_beir_reranks_the_first_stage(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "first-stage" keeps the BM25 order, so the reranked figures must equal BM25's own.
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path))
    out = tmp_path / "scifact.json"
    result = _run(
        "eval", "beir", str(data_dir / "scifact"), "--retriever", "bm25",
        "--reranker", "first-stage", "--json", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["queries"] == 300 and metrics["first_stage_retriever"] == "bm25"
    assert metrics["ndcg@10"] == metrics["first_stage"]["ndcg@10"] > 0.66
    bad = _run("eval", "beir", str(data_dir / "scifact"), "--reranker", "no-such-reranker")
    assert bad.exit_code == 2 and "no-such-reranker" in bad.output
