"""The `mmrag` command line: a thin face over the library API."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mmrag.errors import MMRagError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Multimodal RAG: index, search, ask, evaluate."
)
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval on standard datasets.")
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(no_args_is_help=True, help="Train the small parts mmrag ships.")
app.add_typer(train_app, name="train")

console = Console(soft_wrap=True)  # long paths stay on one line, greppable
err = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="Store directory or milvus://host:port/collection "
        "(default: $MMRAG_STORE or ~/.local/share/mmrag/store).",
    ),
]
JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Write the metrics as JSON to this file.")
]


def _friendly(func: F) -> F:
    """Errors a user can fix are one line on stderr and exit code 2, never a traceback."""

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


def store_location(store: str | Path | None) -> str:
    """--store, else $MMRAG_STORE, else the default folder: a path or a milvus:// URI."""
    if store is not None:
        return str(store)
    if os.environ.get("MMRAG_STORE"):
        return os.environ["MMRAG_STORE"]
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return str(base / "mmrag" / "store")


def store_path(store: str | Path | None) -> Path:
    """The embedded store's folder, for the commands that work on the embedded store only."""
    return Path(store_location(store))


def _open(store: str | None, *, create: bool = False, read_only: bool = False) -> Any:
    from mmrag.index.open import open_store

    return open_store(store_location(store), create=create, read_only=read_only)


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@app.command()
@_friendly
def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    store: StoreOpt = None,
    encoder: Annotated[
        str,
        typer.Option(
            help="Text encoder kind: onnx (default: BGE-small INT8), sentence-transformers "
            "or use-multilingual (Chinese and 15 other languages)."
        ),
    ] = "onnx",
    model: Annotated[
        str | None, typer.Option(help="Model name, local path or hub id for the text encoder.")
    ] = None,
    dense: Annotated[bool, typer.Option(help="Compute text vectors (off: sparse only).")] = True,
    image_encoder: Annotated[
        str,
        typer.Option(
            help="Image-text encoder: auto (lit when images are present), lit, conse, clip, "
            "siglip, or none."
        ),
    ] = "auto",
    image_model: Annotated[
        str | None, typer.Option(help="Hub id or path for a clip/siglip image encoder.")
    ] = None,
    ocr: Annotated[
        str, typer.Option(help="OCR images and scanned pages: auto, always, never.")
    ] = "auto",
    pdf_pages: Annotated[bool, typer.Option(help="Also index PDF pages as images.")] = False,
    asr: Annotated[
        str,
        typer.Option(
            help="Whisper for speech in audio and video: tiny.en, base (multilingual, "
            "language detected), a path, a hub id, or none (video frames only)."
        ),
    ] = "tiny.en",
    audio_encoder: Annotated[
        str | None, typer.Option(help="Audio-text encoder for sounds: clap (with --audio-model).")
    ] = None,
    audio_model: Annotated[
        str | None, typer.Option(help="Hub id or path of the CLAP model.")
    ] = None,
    page_encoder: Annotated[
        str | None, typer.Option(help="Late-interaction page encoder (colpali) for PDF pages.")
    ] = None,
    page_model: Annotated[
        str | None, typer.Option(help="Hub id or path of the page encoder.")
    ] = None,
    chunk_tokens: Annotated[
        int, typer.Option(help="Chunk size in tokens (0: one chunk per section).")
    ] = 256,
    overlap: Annotated[int, typer.Option(help="Token overlap between chunks.")] = 32,
    prune: Annotated[
        bool, typer.Option(help="Delete stored files under PATHS that no longer exist.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="in-process, or ray: read, chunk and embed with Ray Data.")
    ] = "in-process",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (auto, ray://host:10001); default: a local Ray."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Embedding workers: threads sharing each batch (one core each), or Ray "
            "workers with --engine ray (each loads the models once).",
        ),
    ] = 2,
) -> None:
    """Index files and folders: text, Markdown, HTML, PDF, JSONL, images, audio, video.

    Unchanged files are skipped; changed ones are updated.
    """
    from mmrag.index.av_indexing import setup_av_indexing
    from mmrag.index.image_embedder import setup_image_indexing
    from mmrag.index.indexer import Indexer
    from mmrag.models.text import load_text_encoder

    if ocr not in ("auto", "always", "never"):
        raise MMRagError(f"--ocr takes auto, always or never, not {ocr!r}")
    if engine not in ("in-process", "ray"):
        raise MMRagError(f"--engine takes in-process or ray, not {engine!r}")
    if engine == "ray" and (pdf_pages or page_encoder):
        raise MMRagError("--pdf-pages and --page-encoder need --engine in-process")
    with _open(store, create=True) as st:
        if engine == "ray":
            from mmrag.ingest.ray_engine import IndexEmbedders, RayOptions, index_paths_with_ray

            report = index_paths_with_ray(
                st,
                paths,
                IndexEmbedders(
                    text=encoder if dense else None,
                    text_model=model,
                    image_encoder=_image_encoder_choice(st, paths, image_encoder),
                    image_model=image_model,
                    ocr=ocr,
                ),
                options=RayOptions(address=address, workers=workers),
                chunk_tokens=chunk_tokens,
                overlap=overlap,
                prune=prune,
            )
        else:
            enc = None
            if dense:
                enc = load_text_encoder(encoder, **({"model": model} if model else {}))
                if encoder == "sentence-transformers" and workers > 1:
                    import torch

                    # one torch thread per worker: two workers of one thread beat one of
                    # two on SciFact (docs/performance.md, "Indexing throughput")
                    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
            chosen = _image_encoder_choice(st, paths, image_encoder)
            embedders = setup_image_indexing(
                # page vectors live in an embedded store's folder; a server store has none
                getattr(st, "path", None),
                chosen,
                image_model,
                ocr,
                pdf_pages,
                page_encoder,
                page_model,
            )
            embedders = setup_av_indexing(
                # thumbnails go to the store folder, or a server store's blob folder
                getattr(st, "blob_root", None) or st.path,
                embedders,
                None if asr == "none" else asr,
                audio_encoder,
                audio_model,
            )
            indexer = Indexer(
                st,
                enc,
                embedders=embedders,
                chunk_tokens=chunk_tokens,
                overlap=overlap,
                encode_workers=workers,
                progress=_interactive(),
            )
            report = indexer.index_paths(paths, prune=prune)
    for e in report.errors:
        err.print(f"[yellow]skipped[/yellow] {e.path}: {e.reason}")
    console.print(f"[green]indexed[/green] {report.summary()} -> {store_location(store)}")
    if report.errors and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


def _image_encoder_choice(st: Any, paths: list[Path], choice: str) -> str | None:
    """'auto' keeps the store's image encoder, or picks lit when the paths hold images."""
    if choice == "none":
        return None
    stored = st.fields().get("image")
    if choice != "auto":
        return choice
    if stored:
        return stored["encoder"]["kind"]
    from mmrag.ingest.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, iter_files

    existing = [p for p in paths if p.exists()]
    visual = (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)  # video shots are embedded by their keyframes
    has_images = any(p.suffix.lower() in visual for p in iter_files(existing))
    return "lit" if has_images else None


def _retriever(st: Any, name: str | None) -> Any:
    from mmrag.retrieve import RETRIEVERS

    if name is None:
        fields = st.fields()
        name = "multimodal" if "image" in fields else "hybrid" if "text" in fields else "bm25"
    return RETRIEVERS.create(name, store=st)


def _query(text: str, filters: str | None, image: Path | None = None) -> Any:
    from mmrag.index.filters import parse_filter_arg
    from mmrag.types import Query

    if image is not None and not image.is_file():
        raise MMRagError(f"query image {image} does not exist")
    if not text.strip() and image is None:
        raise MMRagError("the query is empty")
    return Query(
        text=text,
        image=str(image.resolve()) if image else None,
        filters=parse_filter_arg(filters) if filters else None,
    )


@app.command()
@_friendly
def search(
    query: Annotated[str, typer.Argument(help="What to look for (may be '' with --image).")],
    store: StoreOpt = None,
    image: Annotated[
        Path | None, typer.Option(help="Search by this image (image->image, image->text).")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="How many results.")] = 10,
    retriever: Annotated[
        str | None,
        typer.Option(
            help="bm25, tfidf, dense or hybrid (default: hybrid if the store has vectors)."
        ),
    ] = None,
    filters: Annotated[
        str | None, typer.Option("--filter", help="Metadata filter: JSON or key=value,key=value.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """Search the store and print ranked passages."""
    with _open(store, read_only=True) as st:
        ranked = _retriever(st, retriever).retrieve(_query(query, filters, image), k)
    if as_json:  # JSON lines, for scripts
        for h in ranked.hits:
            record = {
                "id": h.doc.id,
                "score": h.score,
                "citation": h.doc.citation(),
                "text": h.doc.text,
            }
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    table = Table(show_lines=True)
    for col in ("#", "score", "source", "passage"):
        table.add_column(col)
    for i, h in enumerate(ranked.hits, 1):
        table.add_row(str(i), f"{h.score:.3f}", h.doc.citation(), _describe(h.doc))
    console.print(table)


def _describe(doc: Any, width: int = 300) -> str:
    """A passage's text; media documents are marked with their modality."""
    if str(doc.modality) == "text":
        return _snippet(doc.text, width)
    label = f"[{doc.modality}]"
    return f"{label} {_snippet(doc.text, width)}" if doc.text.strip() else label


def _snippet(text: str, width: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
@_friendly
def ask(
    question: Annotated[str, typer.Argument(help="A question about the indexed material.")],
    store: StoreOpt = None,
    k: Annotated[
        int, typer.Option("--k", "-k", min=1, max=50, help="How many passages to read.")
    ] = 3,
    retriever: Annotated[str | None, typer.Option(help="Retriever name.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Pipeline TOML (see examples/pipeline.toml).")
    ] = None,
    generate: Annotated[
        bool, typer.Option(help="Write an answer with the generator (off: passages only).")
    ] = True,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Longest answer, in tokens.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the answer, citations and stages as JSON.")
    ] = False,
) -> None:
    """Answer through the pipeline (retrieve -> rerank -> refine -> generate) with citations."""
    import copy

    from mmrag.generate import Answer
    from mmrag.pipeline import DEFAULT_CONFIG, Pipeline, StageFailed

    with _open(store, read_only=True) as st:
        if config is not None:
            pipeline = Pipeline.from_toml(config, st)
        else:
            settings = copy.deepcopy(DEFAULT_CONFIG)
            # retrieve wide, then the reranker keeps the k passages the generator reads
            settings["rerank"]["k"] = k
            settings["retrieve"]["k"] = max(k, settings["retrieve"]["k"])
            if retriever:
                settings["retrieve"]["name"] = retriever
            if not generate:
                del settings["generate"]
            pipeline = Pipeline.from_config(settings, st)
        for warning in pipeline.warnings:
            console.print(f"[yellow]warning: {warning}[/yellow]")
        answer: Answer | None = None
        try:
            for item in pipeline.stream(_query(question, None), max_tokens):
                if isinstance(item, Answer):
                    answer = item
                elif isinstance(item, str):
                    if not as_json:
                        console.print(item, end="", markup=False, highlight=False)
                elif not as_json:
                    _print_context(question, item)
        except StageFailed as exc:
            console.print(f"[red]{exc}[/red]; the passages found:")
            _print_context(question, exc.ranked)
            raise typer.Exit(1) from None
    if answer is None:
        return
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    from mmrag.generate.display import print_checked

    if answer.text:
        console.print()
    print_checked(console, answer)
    if answer.dropped:
        console.print(f"[yellow]dropped citations naming no passage: {answer.dropped}[/yellow]")
    timings = ", ".join(f"{s.stage} {s.seconds * 1000:.0f} ms" for s in answer.stages)
    console.print(f"[dim]{timings}[/dim]")


def _print_context(question: str, ranked: Any) -> None:
    if not ranked.hits:
        console.print("No passage in the store matches this question.")
        return
    console.print(f"[bold]{question}[/bold]\n")
    for i, h in enumerate(ranked.hits, 1):
        console.print(f"[{i}] {_describe(h.doc, 600)}\n    [dim]— {h.doc.citation()}[/dim]\n")


@app.command()
@_friendly
def info(
    store: StoreOpt = None,
    sources: Annotated[bool, typer.Option(help="List every stored source.")] = False,
) -> None:
    """What the store holds."""
    from mmrag.models.text import TEXT_ENCODERS
    from mmrag.retrieve import RETRIEVERS

    with _open(store, read_only=True) as st:
        data = st.info()
        listing = st.sources() if sources else []
    table = Table(show_header=False)
    for key, value in data.items():
        table.add_row(
            key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        )
    table.add_row("retrievers", ", ".join(RETRIEVERS.names()))
    table.add_row("text encoders", ", ".join(TEXT_ENCODERS.names()))
    console.print(table)
    for s in listing:
        console.print(f"{s['chunks']:>5}  {s['source_id']}")


@app.command()
@_friendly
def remove(
    sources: Annotated[
        list[str],
        typer.Argument(help="Source ids (file paths as `mmrag info --sources` lists them)."),
    ],
    store: StoreOpt = None,
) -> None:
    """Delete sources and their chunks from the store."""
    ids = [str(Path(s).expanduser().resolve()) if Path(s).exists() else s for s in sources]
    with _open(store) as st:
        n = st.delete_sources(ids)
    console.print(f"removed {n} chunks")


def _cache_root() -> Path:
    return Path(os.environ.get("MMRAG_CACHE", ".mmrag-cache"))


def _cache_dir() -> Path:
    return _cache_root() / "eval-stores"


def _write_json(out: Path | None, result: dict[str, Any]) -> None:
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    console.print_json(text)


def _eval_retrieval(
    name: str,
    corpus: Any,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    retriever: str,
    encoder: str,
    model: str | None,
    metrics: list[str],
    depth: int,
) -> dict[str, Any]:
    from mmrag.eval.runner import cached_store, run_queries, score_run
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    needs_dense = retriever in ("dense", "hybrid")
    enc = load_text_encoder(encoder, **({"model": model} if model else {})) if needs_dense else None
    with cached_store(_cache_dir(), name, corpus, enc, show=_interactive()) as st:
        params: dict[str, Any] = {"store": st}
        if retriever == "dense":
            params["encoder"] = enc
        r = RETRIEVERS.create(retriever, **params)
        run, seconds = run_queries(r, queries, depth, show=_interactive())
    result = score_run(qrels, run, metrics, seconds, len(queries))
    result.update({"retriever": retriever, "encoder": enc.info() if enc else None})
    return result


@eval_app.command("beir")
@_friendly
def eval_beir(
    directory: Annotated[
        Path, typer.Argument(help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/).")
    ],
    retriever: Annotated[str, typer.Option(help="bm25, tfidf, dense or hybrid.")] = "bm25",
    encoder: Annotated[
        str, typer.Option(help="Text encoder kind for dense/hybrid (onnx: BGE-small INT8).")
    ] = "onnx",
    model: Annotated[str | None, typer.Option(help="Encoder model name or path.")] = None,
    split: Annotated[str, typer.Option(help="Qrels split.")] = "test",
    reranker: Annotated[
        str | None,
        typer.Option(help="Rerank the retriever's top 100 with this reranker (see RERANKERS)."),
    ] = None,
    out: JsonOut = None,
) -> None:
    """nDCG@10, Recall@100, MRR@10 and queries/s on a BEIR dataset."""
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus

    if reranker is not None:
        from mmrag.rerank.commands import RerankTask, run_rerank_eval

        _write_json(
            out,
            run_rerank_eval(
                RerankTask.beir,
                directory,
                reranker,
                {},
                retriever=retriever,
                split=split,
                encoder=encoder,
                model=model,
            ),
        )
        return
    data = load_beir(directory, split=split)
    corpus = Corpus(
        texts={d: v["text"] for d, v in data.corpus.items()},
        titles={d: v.get("title", "") for d, v in data.corpus.items()},
    )
    result = _eval_retrieval(
        f"beir-{directory.name}",
        corpus,
        data.queries,
        data.qrels,
        retriever,
        encoder,
        model,
        ["ndcg@10", "recall@100", "mrr@10", "map"],
        100,
    )
    _write_json(out, result)


@eval_app.command("squad-retrieval")
@_friendly
def eval_squad_retrieval(
    file: Annotated[Path, typer.Argument(help="A SQuAD-format JSON file.")],
    retriever: Annotated[str, typer.Option(help="bm25, tfidf, dense or hybrid.")] = "bm25",
    encoder: Annotated[
        str, typer.Option(help="Text encoder kind for dense/hybrid.")
    ] = "use-multilingual",
    model: Annotated[str | None, typer.Option(help="Encoder model name or path.")] = None,
    out: JsonOut = None,
) -> None:
    """Each question's own paragraph is its one relevant document: MRR@10, Recall@5."""
    from mmrag.eval.datasets import load_squad_retrieval
    from mmrag.eval.runner import Corpus

    data = load_squad_retrieval(file)
    corpus = Corpus(texts=data.paragraphs, titles={})
    result = _eval_retrieval(
        f"squad-{file.stem}",
        corpus,
        data.questions,
        data.qrels,
        retriever,
        encoder,
        model,
        ["mrr@10", "recall@5", "recall@1", "ndcg@10"],
        10,
    )
    _write_json(out, result)


@eval_app.command("image-text")
@_friendly
def eval_image_text_cmd(
    directory: Annotated[Path, typer.Argument(help="Flickr8k folder (images/, captions_*.csv).")],
    lang: Annotated[str, typer.Option(help="Caption language: en or zh.")] = "en",
    split: Annotated[
        str, typer.Option(help="test (held out from training), train or all.")
    ] = "test",
    encoder: Annotated[str, typer.Option(help="Image-text encoder kind.")] = "lit",
    model: Annotated[str | None, typer.Option(help="Hub id or path (clip, siglip).")] = None,
    out: JsonOut = None,
) -> None:
    """Text->image and image->text Recall@1/5/10 over the whole image pool."""
    from mmrag.eval.image_text import eval_image_text
    from mmrag.models.image import load_image_encoder

    enc = load_image_encoder(encoder, **({"model": model} if model else {}))
    _write_json(out, eval_image_text(directory, lang, enc, split, _cache_root()))


@eval_app.command("docimg")
@_friendly
def eval_docimg_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name: sroie.")],
    directory: Annotated[Path, typer.Argument(help="Dataset folder.")],
    retriever: Annotated[str, typer.Option(help="ocr-text, bm25 or multimodal.")] = "ocr-text",
    out: JsonOut = None,
) -> None:
    """Receipt company or total -> the receipt image: MRR@10."""
    from mmrag.eval.docimg import eval_docimg_sroie

    if dataset != "sroie":
        raise MMRagError(f"unknown document-image dataset {dataset!r}; supported: sroie")
    result = eval_docimg_sroie(directory, _cache_dir(), retriever, show=_interactive())
    _write_json(out, result)


@train_app.command("align")
@_friendly
def train_align_cmd(
    directory: Annotated[Path, typer.Argument(help="Flickr8k folder with captions_en/zh.csv.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the head (.safetensors).")],
    langs: Annotated[str, typer.Option(help="Caption languages, comma-separated.")] = "en,zh",
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    hidden: Annotated[int, typer.Option(min=8)] = 256,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the LiT projection head (both towers frozen) on the Flickr8k train half."""
    from mmrag.train.align import train_align

    result = train_align(
        directory,
        out,
        tuple(x.strip() for x in langs.split(",") if x.strip()),
        epochs,
        hidden,
        seed,
        cache=_cache_root(),
        show=_interactive(),
    )
    _write_json(None, result)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


def _register_stage_commands() -> None:
    # Commands that live with their stage, so cli.py stays the table of contents.
    from mmrag.eval import qa_commands
    from mmrag.ingest import av_commands
    from mmrag.refine import commands as refine_commands
    from mmrag.rerank import commands as rerank_commands
    from mmrag.server.cli_serve import serve_command

    app.command("serve")(_friendly(serve_command))
    av_commands.register(eval_app)
    rerank_commands.register(eval_app)
    qa_commands.register(eval_app)
    refine_commands.register(eval_app)


_register_stage_commands()
