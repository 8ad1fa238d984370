"""The CLI on a Milvus store: the same commands, a milvus:// URI instead of a folder."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mmrag.cli import app
from tests.scale.conftest import collection_name

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_index_and_search_through_a_milvus_uri(lite_server, monkeypatch, tmp_path) -> None:
    uri = f"milvus://127.0.0.1:{lite_server.port}/{collection_name('cli')}?blobs={tmp_path}"
    result = runner.invoke(app, ["index", str(ROOT / "examples" / "corpus"), "--store", uri])
    assert result.exit_code == 0, result.output
    assert "12 added" in result.output
    monkeypatch.setenv("MMRAG_STORE", uri)  # the environment names the store too
    result = runner.invoke(app, ["search", "waggle dance of honeybees", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert "honeybee-waggle-dance.pdf" in hits[0]["citation"]
    again = runner.invoke(app, ["index", str(ROOT / "examples" / "corpus"), "--store", uri])
    assert "0 added, 0 updated, 12 unchanged" in again.output, again.output


def test_a_server_that_is_down_is_a_one_line_error_naming_the_uri() -> None:
    from tests.scale.servers import free_port

    uri = f"milvus://127.0.0.1:{free_port()}/nothing"
    result = runner.invoke(app, ["search", "anything", "--store", uri])
    assert result.exit_code == 2
    assert "127.0.0.1" in result.output and "Traceback" not in result.output


def test_the_server_serves_a_milvus_store_by_uri(lite_server, tmp_path) -> None:
    from mmrag.server.settings import ServerSettings
    from tests.server.conftest import live_server

    uri = f"milvus://127.0.0.1:{lite_server.port}/{collection_name('srv')}?blobs={tmp_path}"
    indexed = runner.invoke(app, ["index", str(ROOT / "examples" / "corpus"), "--store", uri])
    assert indexed.exit_code == 0, indexed.output
    with live_server(ServerSettings(store=uri, read_only=True)) as live:
        assert live.state.root == tmp_path.resolve()  # media resolve in the blob folder
        found = live.client.post("/api/search", json={"query": "waggle dance", "k": 3})
        assert found.status_code == 200, found.text
        hits = found.json()["hits"]
        assert "honeybee-waggle-dance.pdf" in (hits[0].get("source") or str(hits[0]))
        info = live.client.get("/api/info")
        assert info.status_code == 200, info.text
        assert info.json()["store"]["collection"] in uri and info.json()["store"]["sources"] == 12
