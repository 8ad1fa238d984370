"""Crash trials: run a store operation in a child, kill it (at a random moment or at a
named point), reopen the store and check every invariant, then finish the operation
and compare with a run that was never killed. Used by tests/faults and bench/faults.py.

Trials share one workspace and run one after another: sources are keyed by absolute
path, so the corpus always lies at the same place, and each trial starts from a copy
of the same prepared store (and the log that built it).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.index import faults
from mmrag.index.invariants import check_store, fingerprint, read_log
from mmrag.index.store import EmbeddedStore
from tests.faults import child
from tests.faults.corpus import MARKER, change_files, scifact_records, write_corpus

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mmrag.cli"]
CLI_ENCODER = ["--encoder", "onnx", "--model", child.ENCODER["text_model"]]
CLI_OPTIONS = [*CLI_ENCODER, "--image-encoder", "none", "--asr", "none", "--workers", "1"]

# What the last logged operation must have done when the writer died at a point.
BEFORE_COMMIT = ("write.before_commit", "delete.before_commit")
OPERATIONS = ("index", "index-cli", "reindex", "remove", "prune", "churn", "ann")
# The points each operation reaches (a point it never reaches lets it finish).
STORE_POINTS = [p for p in faults.POINTS if not p.startswith("upload.")]


@dataclass
class Reference:
    """A run never killed: its result, and when its first and last commit happened."""

    fingerprint: list[tuple[str, str, str]]
    first_write: float
    seconds: float


@dataclass
class Workspace:
    root: Path
    data_dir: Path
    files: int = 40
    max_chars: int = 600
    cli_options: tuple[str, ...] = tuple(CLI_OPTIONS)  # how index-cli runs `mmrag index`
    _baseline: bool = False
    references: dict[str, Reference] = field(default_factory=dict)

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def log(self) -> Path:
        return self.root / "commits.jsonl"

    def env(self, crash_at: str | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT)}
        env[faults.LOG_ENV] = str(self.log)
        env.pop(faults.CRASH_ENV, None)
        if crash_at:
            env[faults.CRASH_ENV] = crash_at
        return env

    # ---- preparing each operation's starting state ---------------------------------

    def _fresh(self) -> None:
        for path in (self.corpus, self.store, self.log):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        write_corpus(self.corpus, scifact_records(self.data_dir, self.files, self.max_chars))

    def _from_baseline(self) -> None:
        """The corpus indexed by a clean run, with the log of that run."""
        saved = self.root / "baseline"
        if not self._baseline:
            self._fresh()
            self._run(self.command("index"))
            shutil.rmtree(saved, ignore_errors=True)
            saved.mkdir()
            shutil.copytree(self.store, saved / "store")
            shutil.copy(self.log, saved / "commits.jsonl")
            self._baseline = True
        self._fresh()
        shutil.copytree(saved / "store", self.store)
        shutil.copy(saved / "commits.jsonl", self.log)

    def prepare(self, op: str) -> None:
        if op in ("index", "index-cli", "churn", "ann"):
            self._fresh()
        elif op == "reindex":
            self._from_baseline()
            change_files(sorted(self.corpus.glob("*.txt")))
        elif op == "remove":
            self._from_baseline()
        elif op == "prune":
            self._from_baseline()
            for path in sorted(self.corpus.glob("*.txt"))[::3]:
                path.unlink()
        else:
            raise ValueError(f"unknown operation {op!r}; known: {', '.join(OPERATIONS)}")

    def command(self, op: str) -> list[str]:
        if op == "index-cli":
            return [*CLI, "index", str(self.corpus), "--store", str(self.store), *self.cli_options]
        if op == "remove":
            gone = [str(p) for p in sorted(self.corpus.glob("*.txt"))[1::3]]
            return [*CLI, "remove", *gone, "--store", str(self.store)]
        child_op = {"reindex": "index"}.get(op, op)
        return [
            sys.executable,
            "-m",
            "tests.faults.child",
            child_op,
            str(self.store),
            str(self.corpus),
        ]

    def _run(
        self, argv: list[str], crash_at: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, env=self.env(crash_at), capture_output=True, text=True)
        if done.returncode not in (0, -signal.SIGKILL):
            raise RuntimeError(f"{argv[3:5]} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

    # ---- a clean run, to compare with ----------------------------------------------

    def reference(self, op: str) -> Reference:
        if op not in self.references:
            self.prepare(op)
            start_size = self.log.stat().st_size if self.log.exists() else 0
            started = time.monotonic()
            proc = subprocess.Popen(
                self.command(op), env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            first = None
            while proc.poll() is None:
                if first is None and self.log.exists() and self.log.stat().st_size > start_size:
                    first = time.monotonic() - started
                time.sleep(0.005)
            seconds = time.monotonic() - started
            if proc.returncode != 0:
                raise RuntimeError(f"clean {op} failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            with EmbeddedStore(self.store) as store:
                report = check_store(store, read_log(self.log), marker=MARKER, last_committed=True)
                if not report.ok:
                    raise RuntimeError(f"clean {op} does not pass the checks: {report.to_dict()}")
                self.references[op] = Reference(fingerprint(store), first or seconds, seconds)
        return self.references[op]

    # ---- one trial -----------------------------------------------------------------

    def trial(
        self,
        op: str,
        point: str | None = None,
        nth: int = 1,
        delay: float | None = None,
        finish: bool = True,
    ) -> dict[str, Any]:
        """Kill `op` at `point` (its nth time) or after `delay` seconds; check, finish, check."""
        ref = self.reference(op) if finish else None  # before prepare: it prepares too
        self.prepare(op)
        crash_at = f"{point}:{nth}" if point else None
        started = time.monotonic()
        proc = subprocess.Popen(
            self.command(op),
            env=self.env(crash_at),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if delay is not None:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate()
        out: dict[str, Any] = {
            "op": op,
            "point": point,
            "nth": nth if point else None,
            "delay": None if delay is None else round(delay, 3),
            "killed_after": round(time.monotonic() - started, 3),
        }
        if proc.returncode not in (0, -signal.SIGKILL):
            out.update(outcome="error", ok=False, error=stderr.decode()[-1500:])
            return out
        killed = proc.returncode == -signal.SIGKILL
        out["outcome"] = "killed" if killed else "finished"
        log = read_log(self.log)
        out["logged_ops"] = len(log)
        expect = None
        if killed and point:
            expect = point not in BEFORE_COMMIT
        elif not killed:
            expect = True
        with EmbeddedStore(self.store) as store:
            out["reconciled"] = {k: v["mode"] for k, v in store.reconciled.items()}
            out["check"] = check_store(store, log, marker=MARKER, last_committed=expect).to_dict()
        ok = out["check"]["ok"]
        if ref is not None:
            self._run(self.command(op))
            with EmbeddedStore(self.store) as store:
                after = check_store(store, read_log(self.log), marker=MARKER, last_committed=True)
                out["finished"] = after.to_dict()
                out["same_as_clean_run"] = fingerprint(store) == ref.fingerprint
            ok = ok and after.ok and out["same_as_clean_run"]
        out["ok"] = ok
        return out

    def random_delay(self, op: str, rng: random.Random) -> float:
        """A moment between shortly before the first commit and the end of a clean run."""
        ref = self.reference(op)
        return rng.uniform(0.8 * ref.first_write, ref.seconds * 1.02)
