"""Errors a user can fix are one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from mmrag.cli.console import err
from mmrag.errors import MMRagError

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Wrap a command so MMRagError and Ctrl-C end it with one line, not a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MMRagError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]: every committed batch is kept")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def plain_error(exc: MMRagError) -> typer.Exit:
    """The stage evaluations' one-line error: plain text, so no message is read as markup."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)
