"""A tiny randomly initialised CLAP checkpoint, built and saved by the tests themselves."""

from __future__ import annotations

from pathlib import Path


def build_tiny_clap(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    from mmrag.models.resolve import resolve_model

    # Any WordPiece/BPE tokenizer will do for a random model: take the packaged MiniLM's.
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    config = ClapConfig(
        text_config={
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": 66,
            "pad_token_id": tokenizer.pad_token_id,
            "projection_dim": 16,
        },
        audio_config={
            "spec_size": 256,
            "window_size": 8,
            "patch_size": 4,
            "patch_stride": (4, 4),
            "hidden_size": 32,
            "patch_embeds_hidden_size": 16,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "num_mel_bins": 64,
            "projection_dim": 16,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = ClapModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ClapFeatureExtractor(max_length_s=2, truncation="rand_trunc").save_pretrained(folder)
    return folder
