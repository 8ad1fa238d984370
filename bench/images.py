"""Image benchmark: Flickr8k text <-> image retrieval (en, zh), SROIE receipts by company
or total (OCR path), and image embedding throughput. Writes bench/results/images.json.

    .venv/bin/python bench/images.py [--data ../shared/data] [--cache .mmrag-cache]

Flickr8k pools: the packaged LiT head was trained on the "train" half, so every
encoder is measured on the held-out "test" half (249 images, 1,245 captions per
language); ConSE, which is not trained on these images, is also measured on all 498.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def flickr(data: Path, cache: Path) -> dict[str, Any]:
    from mmrag.eval.image_text import eval_image_text
    from mmrag.models.image import load_image_encoder

    out: dict[str, Any] = {}
    for kind, splits in (("lit", ("test",)), ("conse", ("test", "all"))):
        encoder = load_image_encoder(kind)
        for split in splits:
            for lang in ("en", "zh"):
                result = eval_image_text(data / "flickr8k", lang, encoder, split, cache)
                result.pop("encoder")
                out[f"{kind}/{split}/{lang}"] = result
                print(kind, split, lang, json.dumps(result), flush=True)
    return out


def throughput(data: Path, n: int = 96) -> dict[str, Any]:
    """Images per second, decoding included, uncached, for each offline encoder."""
    from mmrag.models.image import load_image_encoder

    paths = sorted((data / "flickr8k" / "images").glob("*.jpg"))[:n]
    out = {}
    for kind in ("conse", "lit"):
        encoder = load_image_encoder(kind)
        encoder.encode_images(paths[:8])  # warm-up: class-name vectors, first allocations
        start = time.perf_counter()
        encoder.encode_images(paths)
        out[kind] = round(n / (time.perf_counter() - start), 2)
    return {"images": n, "images_per_s": out}


def sroie(data: Path, cache: Path) -> dict[str, Any]:
    from mmrag.eval.docimg import eval_docimg_sroie

    out = {}
    for retriever in ("ocr-text", "bm25", "multimodal"):
        out[retriever] = eval_docimg_sroie(data / "sroie", cache / "eval-stores", retriever)
        print("sroie", json.dumps(out[retriever]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=ROOT / ".mmrag-cache")
    args = parser.parse_args()
    result = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "flickr8k": flickr(args.data, args.cache),
        "throughput": throughput(args.data),
        "sroie": sroie(args.data, args.cache),
        "notes": {
            "flickr8k_split": "test = sha1(image file name)[0] in 0-7 (249 images); "
            "the LiT head is trained on the other 249 only",
            "sroie": "queries are distinct company names / totals; every receipt with that "
            "value is relevant; OCR by RapidOCR PP-OCRv4 at ingest (cached store)",
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "images.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
