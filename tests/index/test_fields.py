"""Vector fields are typed records: their space is stored, older records are migrated,
and the encoder a field was built with is rebuilt with all of its parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.errors import StoreError
from mmrag.index.fields import (
    AUDIO_TEXT,
    IMAGE_TEXT,
    PAGE,
    TEXT,
    FieldSpec,
    field_spec,
    load_encoder,
)
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.models.onnx_text import OnnxTextEncoder
from mmrag.retrieve.dense import DenseRetriever
from mmrag.retrieve.multimodal import MultimodalRetriever

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"

# The records stores wrote before fields named their space (as encoders' info() was then)
LEGACY = {
    "text": {"dim": 384, "encoder": {"kind": "onnx", "model": "bge-small-en-v1.5", "dim": 384}},
    "image": {
        "dim": 384,
        "encoder": {"kind": "lit", "model": "lit", "dim": 384, "params": {"head": "flickr8k"}},
    },
    "audio": {
        "dim": 512,
        "encoder": {"kind": "clap", "model": "m", "dim": 512, "space": "audio-text"},
    },
    "page": {
        "dim": 128,
        "encoder": {"kind": "colpali", "model": "c", "dim": 128, "params": {"model": "c"}},
    },
}


def test_legacy_records_are_read_with_their_space_and_rebuild_parameters() -> None:
    specs = {name: FieldSpec.from_dict(record) for name, record in LEGACY.items()}
    assert {n: s.space for n, s in specs.items()} == {
        "text": TEXT,
        "image": IMAGE_TEXT,
        "audio": AUDIO_TEXT,
        "page": PAGE,
    }
    assert specs["image"].encoder.params == {"head": "flickr8k"}
    assert specs["audio"].encoder.params == {"model": "m"}
    assert specs["text"].encoder.params == {"model": "bge-small-en-v1.5"}
    # written back, a record names its space, and reads the same
    again = FieldSpec.from_dict(specs["page"].to_dict())
    assert again.to_dict()["space"] == PAGE and again.same_vectors(specs["page"])


def test_a_store_refuses_the_same_encoder_in_another_space(tmp_path: Path) -> None:
    info = {"kind": "clip", "model": "m", "dim": 8, "params": {"model": "m"}}
    with EmbeddedStore(tmp_path / "s") as store:
        store.ensure_field("image", 8, info, space=IMAGE_TEXT)
        store.ensure_field("image", 8, info, space=IMAGE_TEXT)  # the same: accepted
        with pytest.raises(StoreError, match="image-text vectors"):
            store.ensure_field("image", 8, info, space=PAGE)
        assert store.fields()["image"]["space"] == IMAGE_TEXT


def test_a_page_field_is_not_taken_for_an_image_field(tmp_path: Path) -> None:
    # before spaces were stored, any record with "params" made the multimodal retriever
    # search that field with an image-text encoder: a ColPali page field included
    encoder = OnnxTextEncoder("bge-small-en-v1.5")
    with EmbeddedStore(tmp_path / "s") as store:
        Indexer(store, encoder, progress=False).index_paths([CORPUS / "printing-press.txt"])
        store.ensure_field("page", 128, LEGACY["page"]["encoder"], space=PAGE)
        members = MultimodalRetriever._default_members(store)
        assert [m.name for m in members] == ["hybrid"]


def test_the_dense_retriever_rebuilds_the_encoder_with_every_parameter(tmp_path: Path) -> None:
    # a query prefix other than the model's default shapes every query vector: a
    # retriever that rebuilt the encoder from its kind and model alone lost it
    packaged = OnnxTextEncoder("bge-small-en-v1.5")  # its own prefix is fixed: take its file
    encoder = OnnxTextEncoder(
        packaged._graph, pooling="cls", query_prefix="Find: ", document_prefix="", max_tokens=128
    )
    with EmbeddedStore(tmp_path / "s") as store:
        Indexer(store, encoder, progress=False).index_paths([CORPUS / "water-cycle.md"])
        spec = field_spec(store, "text")
        assert spec.space == TEXT and spec.encoder.params["query_prefix"] == "Find: "
        rebuilt = DenseRetriever(store).encoder
        assert rebuilt.query_prefix == "Find: " and rebuilt.max_tokens == 128
        assert rebuilt.info() == encoder.info()
        query = "How does water return to the oceans?"
        assert (rebuilt.encode_queries([query]) == encoder.encode_queries([query])).all()
        assert load_encoder(spec).info() == spec.identity
