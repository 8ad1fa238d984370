"""Where the commands write: results to stdout, problems to stderr."""

from __future__ import annotations

import os
import sys

from rich.console import Console

console = Console(soft_wrap=True)  # long paths stay on one line, greppable
err = Console(stderr=True, soft_wrap=True)


def interactive() -> bool:
    """Progress bars for a person at a terminal; none in pipes and CI logs."""
    return sys.stderr.isatty() and not os.environ.get("CI")
