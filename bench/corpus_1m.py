"""A deterministic benchmark corpus of up to millions of chunks, with clustered vectors.

    .venv/bin/python bench/corpus_1m.py [--chunks 1010000] [--data ../shared/data]

Text: every real passage of the shared corpora (SciFact title + abstract, the TREC DL19
MS MARCO passages, the SQuAD dev paragraphs), cut at 200 words as a 256-token chunker
would, is a *template*. A generated chunk takes its length from one random template and
its words from another (its topic): each word is, with probability TOPIC_SHARE, a random
word of the topic template, else a random word of the whole collection. Words keep their
surface form (case, punctuation), so the text goes through the real analyzer; term
frequencies follow the corpora's Zipf curve, and chunks of one topic share vocabulary as
real documents of one subject do. What it lacks: new words. The vocabulary stops at the
corpora's ~100k surface forms, where a real million-passage collection keeps growing.

Vectors (384-d, MiniLM's width): *synthetic*, not encoder output. Each template has a
centre near one of TOPICS_PER_SPACE topic directions; a chunk's vector is its topic
template's centre plus isotropic noise of a random scale, normalised. Queries get a
centre plus smaller noise. The cosines land where MiniLM's do (query to relevant chunk
about 0.6-0.7, unrelated pairs about 0), enough to give HNSW a clustered search problem.

Chunk i depends only on (SEED, i // BLOCK), so the first N chunks of a larger corpus are
the corpus of size N, and each block can be made on its own. The arrays are cached in
.mmrag-cache/bench/ (git-ignored) as .npy files and memory-mapped on reuse.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".mmrag-cache" / "bench"
VERSION = 1  # bump when generation changes, so an old cache is never reused
SEED = 20261202
BLOCK = 10_000
DIM = 384
MAX_WORDS = 200
TOPIC_SHARE = 0.6
TOPICS_PER_SPACE = 512
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Templates:
    """The real passages, as ids into `words` (their distinct surface forms)."""

    words: np.ndarray  # object array of str
    flat: np.ndarray  # int32 word ids of all passages, concatenated
    start: np.ndarray  # int64 per template
    length: np.ndarray  # int64 per template
    centres: np.ndarray  # float32 (templates, DIM), unit rows

    @property
    def count(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class Corpus:
    """`n` chunks: chunk i is words[ids[offsets[i]:offsets[i + 1]]] joined by spaces."""

    words: np.ndarray
    ids: np.ndarray  # int32
    offsets: np.ndarray  # int64, n + 1
    vectors: np.ndarray  # float32 (n, DIM)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def texts(self, lo: int, hi: int) -> list[str]:
        off = self.offsets[lo : hi + 1]
        words = self.words[self.ids[off[0] : off[-1]]].tolist()
        base = int(off[0])
        bounds = zip(off[:-1].tolist(), off[1:].tolist(), strict=True)
        return [" ".join(words[a - base : b - base]) for a, b in bounds]


def real_passages(data: Path) -> list[str]:
    """The shared corpora's passages, in a fixed order."""
    out = []
    for line in (data / "scifact" / "corpus.jsonl").open(encoding="utf-8"):
        doc = json.loads(line)
        out.append(f"{doc['title']} {doc['text']}")
    seen: dict[str, str] = {}
    for query in json.loads((data / "trec-dl19" / "bm25_top100.json").read_text("utf-8")):
        for hit in query["hits"]:
            seen.setdefault(hit["docid"], hit["content"])
    out.extend(seen[k] for k in sorted(seen))
    squad = json.loads((data / "squad" / "dev-v1.1.json").read_text("utf-8"))
    out.extend(p["context"] for a in squad["data"] for p in a["paragraphs"])
    return out


@functools.lru_cache(maxsize=2)  # a build and its queries read the same corpora
def templates(data: Path) -> Templates:
    vocab: dict[str, int] = {}
    flat: list[int] = []
    starts: list[int] = []
    lengths: list[int] = []
    for passage in real_passages(data):
        ids = [vocab.setdefault(w, len(vocab)) for w in _WORD.findall(passage)]
        # Cut long passages into near-equal pieces of at most MAX_WORDS, as a chunker would.
        pieces = -(-len(ids) // MAX_WORDS)
        for part in np.array_split(np.asarray(ids, dtype=np.int64), max(pieces, 1)):
            if len(part):
                starts.append(len(flat))
                lengths.append(len(part))
                flat.extend(part.tolist())
    words = np.empty(len(vocab), dtype=object)
    words[:] = list(vocab)
    rng = np.random.default_rng([SEED, VERSION, 0])
    topics = _unit(rng.standard_normal((TOPICS_PER_SPACE, DIM), dtype=np.float32))
    own = _unit(rng.standard_normal((len(starts), DIM), dtype=np.float32))
    topic_of = rng.integers(TOPICS_PER_SPACE, size=len(starts))
    centres = _unit(0.6 * topics[topic_of] + 0.8 * own)
    return Templates(
        words=words,
        flat=np.asarray(flat, dtype=np.int32),
        start=np.asarray(starts, dtype=np.int64),
        length=np.asarray(lengths, dtype=np.int64),
        centres=centres,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def block(t: Templates, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunks b*BLOCK .. (b+1)*BLOCK-1: word ids, per-chunk lengths, vectors."""
    rng = np.random.default_rng([SEED, VERSION, 1, b])
    topic = rng.integers(t.count, size=BLOCK)
    lengths = t.length[rng.integers(t.count, size=BLOCK)]
    chunk = np.repeat(np.arange(BLOCK), lengths)
    from_topic = rng.random(len(chunk)) < TOPIC_SHARE
    u = rng.random(len(chunk))
    src = topic[chunk]
    in_topic = t.start[src] + (u * t.length[src]).astype(np.int64)
    anywhere = (u * len(t.flat)).astype(np.int64)
    ids = t.flat[np.where(from_topic, in_topic, anywhere)]
    scale = rng.uniform(0.5, 1.1, size=(BLOCK, 1)).astype(np.float32)
    noise = _unit(rng.standard_normal((BLOCK, DIM), dtype=np.float32))
    vectors = _unit(t.centres[topic] + scale * noise)
    return ids, lengths, vectors


def queries(t: Templates, n: int) -> tuple[list[str], np.ndarray]:
    """`n` short queries: 3-6 content words of one topic, and a vector near that topic."""
    rng = np.random.default_rng([SEED, VERSION, 2])
    texts: list[str] = []
    topics = rng.integers(t.count, size=n)
    for topic in topics.tolist():
        lo = int(t.start[topic])
        words = [str(w) for w in t.words[t.flat[lo : lo + int(t.length[topic])]]]
        content = [w for w in words if len(w) >= 4 and w.isalpha()] or words
        pick = rng.choice(len(content), size=min(len(content), int(rng.integers(3, 7))))
        texts.append(" ".join(content[i] for i in sorted(set(pick.tolist()))))
    noise = _unit(rng.standard_normal((n, DIM), dtype=np.float32))
    return texts, _unit(t.centres[topics] + 0.6 * noise)


def cache_dir(n: int, data: Path, cache: Path = CACHE) -> Path:
    key = hashlib.sha256(f"{VERSION}:{SEED}:{BLOCK}:{data.resolve()}".encode()).hexdigest()[:8]
    return cache / f"corpus-v{VERSION}-{key}-{n}"


def build(n: int, data: Path = DATA, cache: Path | None = CACHE) -> Corpus:
    """The first `n` chunks, from the cache when present (memory-mapped), else made now."""
    folder = cache_dir(n, data, cache) if cache is not None else None
    if folder is not None and (folder / "done").exists():
        return _load(folder)
    t = templates(data)
    n_blocks = -(-n // BLOCK)
    ids, lengths, vectors = zip(*(block(t, b) for b in range(n_blocks)), strict=True)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lengths)[:n], out=offsets[1:])
    corpus = Corpus(
        words=t.words,
        ids=np.concatenate(ids)[: offsets[-1]],
        offsets=offsets,
        vectors=np.concatenate(vectors)[:n],
    )
    if folder is not None:
        _save(folder, corpus)
    return corpus


def _save(folder: Path, c: Corpus) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "words.json").write_text(json.dumps(c.words.tolist(), ensure_ascii=False))
    for name in ("ids", "offsets", "vectors"):
        np.save(folder / f"{name}.npy", getattr(c, name))
    (folder / "done").write_text("")  # last: a half-written cache is never read


def _load(folder: Path) -> Corpus:
    words = json.loads((folder / "words.json").read_text())
    array = np.empty(len(words), dtype=object)
    array[:] = words
    return Corpus(
        words=array,
        ids=np.load(folder / "ids.npy", mmap_mode="r"),
        offsets=np.load(folder / "offsets.npy"),
        vectors=np.load(folder / "vectors.npy", mmap_mode="r"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=1_010_000)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    t0 = time.perf_counter()
    corpus = build(args.chunks, args.data)
    lengths = np.diff(corpus.offsets)
    print(
        json.dumps(
            {
                "chunks": len(corpus),
                "words_mean": round(float(lengths.mean()), 1),
                "words_p5_p50_p95": np.percentile(lengths, [5, 50, 95]).tolist(),
                "surface_forms": len(corpus.words),
                "seconds": round(time.perf_counter() - t0, 1),
                "cache": str(cache_dir(args.chunks, args.data)),
            }
        )
    )


if __name__ == "__main__":
    main()
