"""IndexConfig: a serialisable, checked value; the store remembers it and `mmrag index`
reuses it; every indexer built from one owns its loader table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.errors import ConfigError
from mmrag.index.store import EmbeddedStore
from mmrag.indexing import IndexConfig, build_indexer, config_of
from mmrag.indexing.config import NAMES
from mmrag.ingest import LOADERS, chunk_documents, load, load_source
from mmrag.ingest.files import ConfiguredLoader
from mmrag.types import Modality

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"
PDF = CORPUS / "honeybee-waggle-dance.pdf"
NOTHING = {"text_encoder": None, "image_encoder": None}  # no models: loaders only
runner = CliRunner()

EVERYTHING_SET = IndexConfig(
    text_encoder="sentence-transformers",
    text_model="all-MiniLM-L6-v2",
    image_encoder="clip",
    image_model="openai/clip-vit-base-patch32",
    ocr="always",
    pdf_pages=True,
    page_encoder="colpali",
    page_model="vidore/colpali-v1.2",
    asr="base",
    audio_encoder="clap",
    audio_model="laion/clap-htsat-unfused",
    chunk_tokens=128,
    overlap=0,
    workers=3,
)


def test_every_setting_differs_from_its_default_in_the_example() -> None:
    default, example = IndexConfig().to_dict(), EVERYTHING_SET.to_dict()
    assert [n for n in NAMES if default[n] == example[n]] == []


@pytest.mark.parametrize("config", [IndexConfig(), EVERYTHING_SET, IndexConfig(**NOTHING)])
def test_round_trips_through_a_dict_and_json(config: IndexConfig) -> None:
    data = config.to_dict()
    assert list(data) == list(NAMES)
    assert IndexConfig.from_dict(data) == config
    assert IndexConfig.from_dict(json.loads(json.dumps(data))) == config


def test_missing_settings_take_their_defaults() -> None:
    assert IndexConfig.from_dict({}) == IndexConfig()
    assert IndexConfig.from_dict({"ocr": "never"}) == IndexConfig(ocr="never")


def test_unknown_settings_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown index setting 'colour'.*known: text_encoder"):
        IndexConfig.from_dict({"ocr": "never", "colour": "blue"})
    with pytest.raises(ConfigError, match="unknown index settings 'a', 'b'"):
        IndexConfig.from_dict({"a": 1, "b": 2})
    with pytest.raises(ConfigError, match="mapping"):
        IndexConfig.from_dict(["ocr", "never"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown index setting 'dense'"):
        IndexConfig().replace(dense=False)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"ocr": "sometimes"}, "ocr takes auto, always, never, not 'sometimes'"),
        ({"pdf_pages": "yes"}, "pdf_pages is true or false"),
        ({"text_encoder": "bert"}, "unknown text_encoder 'bert'; choose one of onnx"),
        ({"image_encoder": "none"}, "unknown image_encoder 'none'; choose one of auto, clip"),
        ({"page_encoder": "colbert", "page_model": "x"}, "unknown page_encoder 'colbert'"),
        ({"audio_encoder": "pkg.mod:Mine", "audio_model": "x"}, "unknown audio_encoder"),
        ({"page_encoder": "colpali"}, "a page encoder needs --page-model"),
        ({"audio_encoder": "clap"}, "an audio encoder needs --audio-model"),
        ({"asr": ""}, "asr is a name or None"),
        ({"text_model": 7}, "text_model is a name or None"),
        ({"chunk_tokens": -1}, "chunk_tokens must be a whole number >= 0"),
        ({"chunk_tokens": "256"}, "chunk_tokens must be a whole number"),
        ({"overlap": 2.5}, "overlap must be a whole number"),
        ({"workers": 0}, "workers must be a whole number >= 1"),
        ({"workers": True}, "workers must be a whole number"),
        ({"chunk_tokens": 64, "overlap": 64}, "overlap must be smaller than chunk_tokens"),
    ],
)
def test_bad_values_are_refused_with_the_reason(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        IndexConfig.from_dict(bad)
    with pytest.raises(ConfigError):
        IndexConfig().replace(**bad)


def test_accepted_edge_values() -> None:
    assert IndexConfig(chunk_tokens=0, overlap=32).chunk_tokens == 0  # one chunk per section
    assert IndexConfig(text_encoder="mypkg.encoders:Mine").text_encoder == "mypkg.encoders:Mine"
    assert IndexConfig(image_encoder="mypkg.encoders:Mine").image_encoder == "mypkg.encoders:Mine"


def test_a_new_encoder_kind_forgets_the_old_kinds_model() -> None:
    config = IndexConfig(text_encoder="onnx", text_model="bge-small-en-v1.5", image_model="m")
    assert config.replace(text_encoder="sentence-transformers").text_model is None
    assert config.replace(text_encoder="onnx").text_model == "bge-small-en-v1.5"
    assert config.replace(text_encoder="use-multilingual", text_model="x").text_model == "x"
    assert config.replace(ocr="never").text_model == "bge-small-en-v1.5"
    assert config.replace(image_encoder=None).image_model is None


def test_config_of_a_store(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s") as store:
        assert config_of(store) == IndexConfig()
        assert config_of(store, dense=False) == IndexConfig(text_encoder=None)
        # a store indexed before configs were remembered: its text field's encoder
        store.ensure_field("text", 384, {"kind": "sentence-transformers", "model": "m", "dim": 384})
        assert config_of(store) == IndexConfig(text_encoder="sentence-transformers", text_model="m")
        store.set_index_config(EVERYTHING_SET.to_dict())
        assert config_of(store) == EVERYTHING_SET
        store.set_index_config({"ocr": "never", "colour": "blue"})
        with pytest.raises(ConfigError, match="the store's remembered index config: unknown"):
            config_of(store)


# ---- the CLI remembers and reuses -----------------------------------------------------


def _index(*args: str) -> str:
    result = runner.invoke(app, ["index", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_reindexing_without_options_reuses_the_stored_config(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    store = str(tmp_path / "store")
    options = ["--encoder", "sentence-transformers", "--chunk-tokens", "96", "--overlap", "8"]
    assert "12 added" in _index(str(corpus), "--store", store, *options, "--ocr", "never")
    expected = IndexConfig(
        text_encoder="sentence-transformers", chunk_tokens=96, overlap=8, ocr="never"
    )
    with EmbeddedStore(store, read_only=True) as st:
        assert st.index_config() == expected.to_dict()
        fields = st.fields()
    assert fields["text"]["encoder"]["kind"] == "sentence-transformers"

    # No options: the stored config, so no "refusing to mix" for the default onnx encoder.
    assert "0 added, 0 updated, 12 unchanged" in _index(str(corpus), "--store", store)
    # A changed file is chunked with the stored 96/8, not the default 256/32.
    changed = corpus / "water-cycle.md"
    changed.write_text(
        "# Water\n\n" + " ".join(f"Rain falls on hill {i} and runs to the sea." for i in range(90))
    )
    assert "0 added, 1 updated, 11 unchanged" in _index(str(corpus), "--store", store)
    with EmbeddedStore(store, read_only=True) as st:
        assert st.index_config() == expected.to_dict() and st.fields() == fields
        stored = sorted(
            (d.span.start, d.span.end)
            for _, d in st.iter_documents()
            if d.source_id == str(changed.resolve())
        )
    wanted = chunk_documents(load_source(changed), 96, 8)
    assert len(wanted) > 4 and stored == sorted((d.span.start, d.span.end) for d in wanted)

    # An option given changes that setting alone, and is remembered.
    _index(str(corpus), "--store", store, "--workers", "1")
    with EmbeddedStore(store, read_only=True) as st:
        assert st.index_config() == expected.replace(workers=1).to_dict()


def test_no_dense_is_remembered_and_dense_turns_vectors_back_on(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Quarks are bound by gluons.")
    store = str(tmp_path / "store")
    _index(str(docs), "--store", store, "--no-dense")
    _index(str(docs), "--store", store)
    with EmbeddedStore(store, read_only=True) as st:
        assert st.fields() == {} and st.index_config()["text_encoder"] is None
    _index(str(docs), "--store", store, "--dense")
    with EmbeddedStore(store, read_only=True) as st:
        assert st.fields()["text"]["encoder"]["kind"] == "onnx"
        assert st.index_config()["text_encoder"] == "onnx"


def test_a_bad_option_is_one_line_and_remembers_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = runner.invoke(app, ["index", str(CORPUS), "--store", str(store), "--ocr", "maybe"])
    assert result.exit_code != 0 and "ocr takes auto, always, never" in result.output
    assert "Traceback" not in result.output and not store.exists()
    (tmp_path / "a.txt").write_text("Chunks of four tokens cannot overlap by eight.")
    _index(
        str(tmp_path / "a.txt"),
        "--store",
        str(store),
        "--no-dense",
        "--chunk-tokens",
        "4",
        "--overlap",
        "0",
    )
    result = runner.invoke(app, ["index", str(CORPUS), "--store", str(store), "--overlap", "8"])
    assert (
        result.exit_code != 0 and "overlap must be smaller than chunk_tokens (4)" in result.output
    )
    with EmbeddedStore(store, read_only=True) as st:
        assert st.index_config()["overlap"] == 0


# ---- loader tables belong to their indexer -------------------------------------------


def test_indexers_own_their_loader_tables(tmp_path: Path) -> None:
    before = dict(LOADERS)
    with EmbeddedStore(tmp_path / "pages") as a, EmbeddedStore(tmp_path / "plain") as b:
        pages = build_indexer(a, IndexConfig(**NOTHING, pdf_pages=True, ocr="never"))
        first = dict(pages.loaders)
        plain = build_indexer(b, IndexConfig(**NOTHING, asr=None))
        assert pages.loaders == first  # building the second left the first's table alone
        assert LOADERS == before  # and changed no module-level table
        assert pages.loaders[".pdf"] != plain.loaders[".pdf"] == LOADERS[".pdf"]
        assert pages.loaders[".png"].target == ConfiguredLoader(
            "mmrag.ingest.image_loader:make_image_loader", ocr="never"
        )
        # asr none: audio files keep the default loader; video gets the store's thumbnails
        assert plain.loaders[".wav"] == LOADERS[".wav"] != pages.loaders[".wav"]
        assert plain.loaders[".mp4"].target.settings == {
            "transcriber": None,
            "media_dir": str(b.media_root / "media"),
        }
        # each indexes the same PDF its own way, in the same process
        pages.index_paths([PDF])
        plain.index_paths([PDF])
        assert {d.modality for _, d in a.iter_documents()} == {Modality.TEXT, Modality.PAGE}
        assert {d.modality for _, d in b.iter_documents()} == {Modality.TEXT}
    assert LOADERS == before
    (source,) = load(PDF).sources  # the default table still reads text only
    assert source.media == []
