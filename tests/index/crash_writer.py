"""Child process for the crash test: writes batches forever, printing each committed batch."""

import json
import sys

import numpy as np

from mmrag.index.batch import Batch, FieldVectors, SourceInfo
from mmrag.index.store import EmbeddedStore
from mmrag.types import Document


def main(store_dir: str, corpus_file: str) -> None:
    texts = [json.loads(line)["text"] for line in open(corpus_file, encoding="utf-8")]
    rng = np.random.default_rng(0)
    store = EmbeddedStore(store_dir)
    store.ensure_field("text", 16, {"kind": "random", "model": "crash-test"})
    n = 0
    for b in range(10_000):
        docs, sources = [], []
        for i in range(20):
            doc_id = f"b{b}-d{i}"
            text = f"marker{b}x{i} " + texts[n % len(texts)]
            n += 1
            sources.append(SourceInfo(source_id=doc_id, content_hash=str(n)))
            docs.append(Document(id=doc_id, text=text, source_id=doc_id))
        batch = Batch(
            sources=sources,
            docs=docs,
            tokens=[store.analyzer.tokens(d.text) for d in docs],
            vectors={"text": FieldVectors.full(rng.standard_normal((20, 16)).astype(np.float32))},
        )
        store.write(batch)
        print(b, flush=True)
        if b % 5 == 4:
            store.checkpoint()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
