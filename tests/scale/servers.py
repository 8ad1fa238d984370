"""Start and stop real Milvus servers on loopback for the tests and the benchmark.

Milvus Lite runs as `milvus-lite server` in a child process; Milvus 2.3.5 (the real
engine, from the `milvus` package) through its own launcher. Both wait a bounded time
for the server to answer and are stopped by the process id they started.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_milvus(uri: str, seconds: float, alive: Any = None) -> None:
    from pymilvus import MilvusClient, MilvusException

    from mmrag.index.milvus.client import GRPC_OPTIONS

    deadline = time.monotonic() + seconds
    while True:
        try:
            client = MilvusClient(uri=uri, timeout=2, dedicated=True, grpc_options=GRPC_OPTIONS)
            client.get_server_version()
            client.close()
            return
        except MilvusException:
            if time.monotonic() > deadline or (alive is not None and not alive()):
                raise TimeoutError(f"Milvus at {uri} did not answer within {seconds} s") from None
            time.sleep(0.2)


@dataclass
class LiteServer:
    """`milvus-lite server` on 127.0.0.1; restartable on the same data folder."""

    data_dir: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LiteServer:
        self.port = self.port or free_port()
        exe = shutil.which("milvus-lite", path=str(Path(sys.executable).parent)) or "milvus-lite"
        self.proc = subprocess.Popen(
            [exe, "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
            + ["--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_milvus(self.uri, timeout, alive=lambda: self.proc.poll() is None)
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class Milvus23Server:
    """The real Milvus engine 2.3.5 from the `milvus` package, standalone, on loopback."""

    base_dir: Path
    server: Any = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.listen_port}"

    def start(self, timeout: float = 90.0) -> Milvus23Server:
        from milvus import MilvusServer

        self.server = MilvusServer(wait_for_started=False)
        self.server.set_base_dir(str(self.base_dir))
        for component in ("rootCoord", "proxy", "queryCoord", "queryNode") + (
            "indexCoord",
            "indexNode",
            "dataCoord",
            "dataNode",
        ):
            # advertise loopback; ports are picked free by the launcher
            self.server.config.set(f"{component}.ip", "127.0.0.1")
        self.server.start()
        try:
            self.server.wait_started(timeout=int(timeout * 1000))
            wait_for_milvus(self.uri, timeout)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
