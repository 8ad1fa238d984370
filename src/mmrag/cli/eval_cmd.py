"""`mmrag eval beir|squad-retrieval|image-text|docimg`: retrieval on standard datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.console import interactive
from mmrag.cli.results import JsonOut, cache_root, eval_cache_dir, write_json
from mmrag.errors import MMRagError


def eval_retrieval(
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
    """Index `corpus` once (cached by `name`), run the queries, score the run."""
    from mmrag.eval.runner import cached_store, run_queries, score_run
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    needs_dense = retriever in ("dense", "hybrid")
    enc = load_text_encoder(encoder, **({"model": model} if model else {})) if needs_dense else None
    with cached_store(eval_cache_dir(), name, corpus, enc, show=interactive()) as st:
        params: dict[str, Any] = {"store": st}
        if retriever == "dense":
            params["encoder"] = enc
        r = RETRIEVERS.create(retriever, **params)
        run, seconds = run_queries(r, queries, depth, show=interactive())
    result = score_run(qrels, run, metrics, seconds, len(queries))
    result.update({"retriever": retriever, "encoder": enc.info() if enc else None})
    return result


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
        from mmrag.eval.rerank_run import RerankTask, run_rerank_eval

        write_json(
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
    result = eval_retrieval(
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
    write_json(out, result)


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
    result = eval_retrieval(
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
    write_json(out, result)


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
    write_json(out, eval_image_text(directory, lang, enc, split, cache_root()))


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
    result = eval_docimg_sroie(directory, eval_cache_dir(), retriever, show=interactive())
    write_json(out, result)
