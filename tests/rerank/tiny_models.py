"""Tiny randomly initialised models, built and saved by the tests (no weights are packaged).

The BERT models reuse the packaged MiniLM's WordPiece tokenizer; the T5 model gets a
word-level tokenizer over the words of the texts it will read, so "true" and "false"
are single tokens as they are for monoT5.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mmrag.models.resolve import resolve_model


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))


def save_tiny_bert_classifier(path: Path, num_labels: int = 1, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = minilm_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(path)
    return path


def save_tiny_colbert(path: Path, dim: int = 16, seed: int = 0) -> Path:
    """A colbert-ir layout checkpoint: `bert.*` encoder weights plus `linear.weight`."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = minilm_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    bert = BertModel(config, add_pooling_layer=False).eval()
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = torch.randn(dim, config.hidden_size)
    path.mkdir(parents=True, exist_ok=True)
    config.architectures = ["BertModel"]
    config.save_pretrained(path)
    save_file(state, str(path / "model.safetensors"))
    tokenizer.save_pretrained(path)
    return path


def save_tiny_t5(path: Path, texts: Iterable[str], seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    specials = ["<pad>", "</s>", "<unk>"]
    words = {"true", "false", "Query:", "Document:", "Relevant:"}
    for t in texts:
        words.update(t.lower().split())
    vocab = {w: i for i, w in enumerate(specials + sorted(words - set(specials)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.model_max_length = 512
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
