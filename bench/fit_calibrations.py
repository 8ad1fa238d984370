"""Fit the Platt calibrations shipped in src/mmrag/data/calibrations.json.

    .venv/bin/python bench/fit_calibrations.py [--data ../shared/data]

- MiniLM (text field): SciFact test queries, the dense top-20 of each, labelled by qrels.
- LiT head (image field): Flickr8k held-out split, each English caption's top-20 images,
  labelled by whether the image is the caption's own.
Platt scaling is monotonic, so it changes no ranking within one list; it only makes
scores of different encoders comparable when lists are fused.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from mmrag.retrieve.calibration import CALIBRATIONS, encoder_key, fit_platt

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "mmrag" / "data" / CALIBRATIONS
DEPTH = 20


def fit_minilm(data: Path) -> tuple[str, dict]:
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus, cached_store
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    cache = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache")) / "eval-stores"
    encoder = load_text_encoder("sentence-transformers")
    store = cached_store(cache, "beir-scifact", corpus, encoder, show=False)
    try:
        qids = [q for q in beir.queries if q in beir.qrels]
        ranked = RETRIEVERS.create("dense", store=store).retrieve_many(
            [beir.queries[q] for q in qids], DEPTH
        )
        scores, labels = [], []
        for q, r in zip(qids, ranked, strict=True):
            for h in r.hits:
                scores.append(h.score)
                labels.append(int(beir.qrels[q].get(h.doc.id, 0) > 0))
        info = store.fields()["text"]
    finally:
        store.close()
    platt = fit_platt(scores, labels)
    return encoder_key(info), {
        "a": round(platt.a, 4),
        "b": round(platt.b, 4),
        "fitted_on": f"scifact test queries, dense top-{DEPTH}, qrels labels",
        "pairs": len(scores),
        "relevant": int(sum(labels)),
    }


def fit_lit(data: Path) -> tuple[str, dict]:
    from mmrag.eval.image_text import _cached_image_vectors, load_flickr8k
    from mmrag.index.image_embedder import ImageFieldEmbedder
    from mmrag.models.image import load_image_encoder

    encoder = load_image_encoder("lit")
    flickr = load_flickr8k(data / "flickr8k", "en", "test")
    cache = Path(os.environ.get("MMRAG_CACHE", ROOT / ".mmrag-cache"))
    images, _ = _cached_image_vectors(encoder, flickr.images, cache)
    texts = encoder.encode_texts(flickr.captions)
    sims = texts @ images.T
    top = np.argsort(-sims, axis=1)[:, :DEPTH]
    scores = np.take_along_axis(sims, top, axis=1).ravel()
    labels = (top == flickr.owner[:, None]).astype(int).ravel()
    platt = fit_platt(scores.tolist(), labels.tolist())
    info = {"encoder": ImageFieldEmbedder(encoder).info()}
    return encoder_key(info), {
        "a": round(platt.a, 4),
        "b": round(platt.b, 4),
        "fitted_on": f"flickr8k held-out split, English captions, top-{DEPTH} images",
        "pairs": int(len(scores)),
        "relevant": int(labels.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("MMRAG_DATA", ROOT.parent / "shared" / "data")),
    )
    args = parser.parse_args()
    table = {}
    for fit in (fit_minilm, fit_lit):
        key, entry = fit(args.data)
        table[key] = entry
        print(key, entry)
    OUT.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
