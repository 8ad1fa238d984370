"""A server process for the upload crash test: one upload or one deletion, in process.

python -m tests.faults.server_child <store> upload <name> <text>
python -m tests.faults.server_child <store> delete <source id>
"""

from __future__ import annotations

import sys

from fastapi.testclient import TestClient

from mmrag.server import ServerSettings, create_app


def main(argv: list[str]) -> None:
    store, op = argv[0], argv[1]
    with TestClient(create_app(ServerSettings(store=store, dense=False))) as client:
        if op == "upload":
            files = [("files", (argv[2], argv[3].encode("utf-8"), "text/plain"))]
            response = client.post("/api/documents", files=files)
        else:
            response = client.delete("/api/documents", params={"source_id": argv[2]})
        response.raise_for_status()


if __name__ == "__main__":
    main(sys.argv[1:])
