"""The `mmrag` command line: a thin face over the library API.

`mmrag.cli:app` is the console entry point; `store_path` and `index` are read by the
library (mmrag.open_store, eval/qa.py), so they stay importable from here.
"""

from mmrag.cli.app import app, eval_app, main, train_app
from mmrag.cli.console import console, err
from mmrag.cli.index_cmd import index
from mmrag.cli.store_location import store_location, store_path

__all__ = [
    "app",
    "console",
    "err",
    "eval_app",
    "index",
    "main",
    "store_location",
    "store_path",
    "train_app",
]
