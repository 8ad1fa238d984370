"""`mmrag doctor`: check a store, and with --repair rebuild and recover what can be."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mmrag.cli.console import console
from mmrag.cli.store_location import WaitOpt, store_path

_COLOUR = {"ok": "green", "pending": "yellow", "problem": "red"}


def doctor(
    store: Annotated[
        str | None,
        typer.Argument(help="Store folder (default: $MMRAG_STORE or the user data folder)."),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            help="Rebuild the derived indexes, delete orphan blobs, and copy a damaged "
            "database's readable rows into a new one (the damaged file is kept)."
        ),
    ] = False,
    wait: WaitOpt = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the store's database, derived indexes, media blobs and config.

    Exit code 0: healthy; 1: problems found (or left after --repair).
    """
    from mmrag.indexing import doctor as checks

    path = store_path(store)
    report = checks.repair(path, lock_timeout=wait) if repair else checks.check(path)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        for f in report.findings:
            colour = _COLOUR.get(f.status, "white")
            console.print(f"[{colour}]{f.status:<8}[/{colour}] {f.part:<12} {f.detail}")
        for line in report.repaired:
            console.print(f"[cyan]repaired[/cyan] {line}")
        if report.salvage is not None:
            console.print(f"[cyan]lost[/cyan]     {lost_summary(report.salvage.to_dict())}")
    if not report.healthy:
        raise typer.Exit(1)


def lost_summary(lost: dict) -> str:
    """One line: what the salvage could not bring across, and what to run next."""
    exact = "" if lost["chunks_lost_exact"] else " at least"
    vectors = ", ".join(f"{n} {name} vector(s)" for name, n in lost["vectors_lost"].items())
    line = (
        f"{exact} {lost['chunks_lost']} chunk(s) ({lost['chunks']} kept), "
        f"{lost['sources_lost']} source record(s) ({lost['sources']} kept)"
        + (f", {vectors}" if vectors else "")
        + (", some settings (meta)" if lost["meta_lost"] else "")
    ).strip()
    if lost["sources_to_reindex"]:
        line += (
            f"; {lost['sources_to_reindex']} source(s) are marked changed: "
            "`mmrag index` of their files restores them"
        )
    return line
