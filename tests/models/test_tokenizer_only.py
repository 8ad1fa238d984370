"""Counting tokens needs only the tokenizer: the refiner must not load a model's weights."""

from __future__ import annotations

import subprocess
import sys

from mmrag.ingest.chunking import TokenCounter
from mmrag.models.causal_lm import load_causal_lm, load_tokenizer

TEXT = (
    "The printing press was invented by Johannes Gutenberg around 1440 in Mainz; "
    "二十四节气是中国古代用来指导农事的时间体系。"
)


def test_the_tokenizer_alone_counts_as_the_model_tokenizer_does() -> None:
    alone = TokenCounter(load_tokenizer())
    full = TokenCounter(load_causal_lm().tokenizer)
    assert alone.count(TEXT) == full.count(TEXT) > 10
    assert alone.count_many([TEXT, "a b"]) == full.count_many([TEXT, "a b"])


def test_loading_the_tokenizer_leaves_the_weights_on_disk() -> None:
    load_causal_lm()  # converted once, so the tokenizer file sits beside the weights
    code = (
        "import sys\n"
        "from mmrag.models import causal_lm\n"
        "from mmrag.refine.extractive import ExtractiveRefiner\n"
        "ExtractiveRefiner().counter().count('hello world')\n"
        "assert not causal_lm._loaded, causal_lm._loaded\n"
        "assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
