"""The `mmrag` Typer app: the table of contents of every command and where it lives."""

from __future__ import annotations

import typer

from mmrag.cli import eval_media_cmd, eval_qa_cmd, eval_refine_cmd, eval_rerank_cmd
from mmrag.cli.ask_cmd import ask
from mmrag.cli.doctor_cmd import doctor
from mmrag.cli.eval_cmd import eval_beir, eval_docimg_cmd, eval_image_text_cmd, eval_squad_retrieval
from mmrag.cli.friendly import friendly
from mmrag.cli.index_cmd import index
from mmrag.cli.search_cmd import search
from mmrag.cli.serve_cmd import serve_command
from mmrag.cli.store_cmds import info, remove
from mmrag.cli.train_cmd import train_align_cmd

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Multimodal RAG: index, search, ask, evaluate."
)
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate retrieval on standard datasets.")
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(no_args_is_help=True, help="Train the small parts mmrag ships.")
app.add_typer(train_app, name="train")

# Registration order is the order `mmrag --help` lists the commands in.
for command in (index, search, ask, info, remove, doctor):
    app.command()(friendly(command))
app.command("serve")(friendly(serve_command))

eval_app.command("beir")(friendly(eval_beir))
eval_app.command("squad-retrieval")(friendly(eval_squad_retrieval))
eval_app.command("image-text")(friendly(eval_image_text_cmd))
eval_app.command("docimg")(friendly(eval_docimg_cmd))
# The stage evaluations print their own plain one-line errors, so they are not wrapped.
eval_media_cmd.register(eval_app)
eval_rerank_cmd.register(eval_app)
eval_qa_cmd.register(eval_app)
eval_refine_cmd.register(eval_app)

train_app.command("align")(friendly(train_align_cmd))


def main() -> None:  # pragma: no cover - console entry
    app()
