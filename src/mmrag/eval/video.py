"""Video retrieval on constructed clips: caption or narration → clip and time span.

No real video data set is available here, so the clips are CONSTRUCTED (see
eval/constructed_video.py): each shows three held-out ("test" split) Flickr8k photos,
each narrated by espeak-ng reading the photo's first caption. Queries:

- "narration": the spoken caption (found through the transcript, and the pictures);
- "caption": the photo's second caption, never spoken (found through the pictures by
  the LiT image–text encoder, whose head never saw these photos, and by any words it
  shares with the narration).

A hit is right for "clip" when it is from the right clip, and for "span" when it is
also in the right time: it overlaps the photo's span by at least half of the shorter
of the two. R@k: the share of queries with a right hit among the first k.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import ConfigError, IngestError
from mmrag.eval.constructed_video import ClipPart, ConstructedClip, build_clip
from mmrag.eval.image_text import flickr8k_split
from mmrag.types import Hit, Modality, Query

PHOTOS_PER_CLIP = 3
RETRIEVERS = ("multimodal", "text", "visual")
KS = (1, 5)


@dataclass(frozen=True, slots=True)
class VideoQuery:
    id: str
    text: str
    clip: str  # resolved path of the clip
    part: ClipPart
    form: str  # "narration" or "caption"


def _captions(flickr: Path) -> dict[str, list[str]]:
    import csv

    table = Path(flickr) / "captions_en.csv"
    if not table.is_file():
        raise IngestError(str(table), "no such file (expected the Flickr8k folder)")
    out: dict[str, list[str]] = {}
    with table.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["image"], []).append(row["caption"].strip().rstrip(" ."))
    return out


def constructed_clips(flickr: Path, n_clips: int, cache: Path) -> list[ConstructedClip]:
    """n clips of held-out photos, built once into the cache (the same photos each time)."""
    captions = _captions(flickr)
    photos = sorted(p for p in captions if flickr8k_split(p) == "test" and len(captions[p]) >= 2)
    if n_clips * PHOTOS_PER_CLIP > len(photos):
        raise ConfigError(f"at most {len(photos) // PHOTOS_PER_CLIP} clips from these photos")
    folder = Path(cache) / "constructed-video"
    clips = []
    for c in range(n_clips):
        names = photos[c * PHOTOS_PER_CLIP : (c + 1) * PHOTOS_PER_CLIP]
        narrations = [captions[n][0] for n in names]
        key = hashlib.sha256(json.dumps([names, narrations]).encode()).hexdigest()[:10]
        path = folder / f"clip{c:03d}-{key}.mp4"
        parts_file = path.with_suffix(".json")
        if path.is_file() and parts_file.is_file():
            parts = [ClipPart(**p) for p in json.loads(parts_file.read_text())]
            clips.append(ConstructedClip(path, parts))
            continue
        clip = build_clip([Path(flickr) / "images" / n for n in names], narrations, path)
        parts_file.write_text(json.dumps([_part(p) for p in clip.parts]))
        clips.append(clip)
    return clips


def _part(p: ClipPart) -> dict[str, Any]:
    return {"image": p.image, "narration": p.narration, "t_start": p.t_start, "t_end": p.t_end}


def video_queries(clips: list[ConstructedClip], flickr: Path) -> list[VideoQuery]:
    captions = _captions(flickr)
    out = []
    for clip in clips:
        for part in clip.parts:
            src = str(clip.path.resolve())
            stem = f"{clip.path.stem}/{part.image}"
            out.append(VideoQuery(f"narration:{stem}", part.narration, src, part, "narration"))
            out.append(VideoQuery(f"caption:{stem}", captions[part.image][1], src, part, "caption"))
    return out


def right_span(hit: Hit, part: ClipPart) -> bool:
    span = hit.doc.span
    if span is None or span.t_start is None or span.t_end is None:
        return False
    overlap = min(span.t_end, part.t_end) - max(span.t_start, part.t_start)
    shorter = min(span.t_end - span.t_start, part.t_end - part.t_start)
    return overlap > 0 and overlap >= 0.5 * shorter


def _retriever(name: str, store: Any) -> Any:
    from mmrag.retrieve.crossmodal import CrossModalRetriever
    from mmrag.retrieve.hybrid import HybridRetriever
    from mmrag.retrieve.multimodal import MultimodalRetriever

    visual = CrossModalRetriever(store, "image", modalities=(Modality.VIDEO,))
    if name == "visual":
        return visual
    if name == "text":
        return HybridRetriever(store)
    if name == "multimodal":
        return MultimodalRetriever(store, [HybridRetriever(store), visual])
    raise ConfigError(f"unknown retriever {name!r}; choose one of {RETRIEVERS}")


def video_store(
    clips: list[ConstructedClip], cache: Path, asr: str, show: bool
) -> tuple[Any, dict]:
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing import IndexConfig, build_indexer
    from mmrag.media.decode import probe

    paths = [c.path for c in clips]
    key = hashlib.sha256(json.dumps([asr, *map(str, paths)]).encode()).hexdigest()[:12]
    folder = Path(cache) / "eval-stores" / f"video-{key}"
    store = EmbeddedStore(folder)
    config = IndexConfig(
        text_encoder="sentence-transformers", image_encoder="lit", asr=asr, workers=1
    )
    indexer = build_indexer(store, config, progress=show)
    started, cpu = time.perf_counter(), time.process_time()
    report = indexer.index_paths(paths)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if report.errors:
        store.close()
        raise IngestError(report.errors[0].path, report.errors[0].reason)
    stats: dict[str, Any] = {"clips": len(paths)}
    if report.added == len(paths):  # a fresh index: its time is the ingest throughput
        minutes = sum(probe(p).duration for p in paths) / 60
        stats["video_minutes"] = round(minutes, 2)
        stats["index_seconds"] = round(seconds, 1)
        stats["video_min_per_min"] = round(minutes / (seconds / 60), 2)
        stats["index_cpu_seconds"] = round(cpu, 1)
        stats["video_min_per_cpu_min"] = round(minutes / (cpu / 60), 2)
    return store, stats


def eval_video(
    flickr: Path,
    cache: Path,
    n_clips: int = 20,
    retrievers: tuple[str, ...] = RETRIEVERS,
    asr: str = "tiny.en",
    show: bool = False,
) -> dict[str, Any]:
    """The body of `mmrag eval video DIR`: clip and span R@1/R@5 per query form."""
    clips = constructed_clips(flickr, n_clips, cache)
    queries = video_queries(clips, flickr)
    store, stats = video_store(clips, cache, asr, show)
    result: dict[str, Any] = {
        "data": "constructed: held-out Flickr8k photos (3 per clip) + espeak-ng narration",
        "asr": asr,
        "queries": len(queries),
        **stats,
    }
    with store:
        for name in retrievers:
            r = _retriever(name, store)
            ranked = r.retrieve_many([Query(text=q.text, id=q.id) for q in queries], 10)
            scores: dict[str, float] = {}
            for form in ("narration", "caption"):
                chosen = [(q, rk) for q, rk in zip(queries, ranked, strict=True) if q.form == form]
                for k in KS:
                    clip_ok = [any(h.doc.group == q.clip for h in rk.hits[:k]) for q, rk in chosen]
                    span_ok = [
                        any(h.doc.group == q.clip and right_span(h, q.part) for h in rk.hits[:k])
                        for q, rk in chosen
                    ]
                    scores[f"{form}_clip_r@{k}"] = round(sum(clip_ok) / len(chosen), 4)
                    scores[f"{form}_span_r@{k}"] = round(sum(span_ok) / len(chosen), 4)
            result[name] = scores
    return result
