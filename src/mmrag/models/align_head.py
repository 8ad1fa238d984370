"""A LiT-style projection head: frozen image features -> the frozen text tower's space.

Both towers stay frozen (Zhai et al., 2022, "LiT"); only this small MLP is trained,
contrastively, on caption pairs (`mmrag train align`). It refines a zero-shot prior
instead of replacing it: the output is ``normalise(alpha * prior + mlp(z))`` where
`prior` is the ConSE vector (class probabilities x class-name embeddings) and `z` the
standardised pooled backbone features. With few training images the prior keeps what
the ImageNet classifier knows, and the MLP adds what captions say that class names
cannot (people, actions, scenes).

The head is saved as safetensors in float16 (about 1 MB) with its training record in
the file's metadata.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmrag.errors import ConfigError

# Packaged heads, by name: reproducible with the command in their metadata.
PACKAGED_HEADS = {"flickr8k-lit": "lit_head_flickr8k.safetensors"}


class AlignHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )
        self.alpha = nn.Parameter(torch.tensor(1.0))
        # Learned inverse temperature of the contrastive loss (CLIP's logit scale).
        self.log_scale = nn.Parameter(torch.tensor(3.0))

    def set_standardisation(self, features: torch.Tensor) -> None:
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0) + 1e-6)

    def forward(self, features: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        z = (features - self.mean) / self.std
        return nn.functional.normalize(self.alpha * prior + self.mlp(z), dim=-1)


def save_head(head: AlignHead, path: Path, record: dict[str, Any]) -> None:
    """float16 safetensors; `record` (how it was trained) goes into the metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in head.state_dict().items()}
    shape = {"in_dim": head.in_dim, "out_dim": head.out_dim, "hidden": head.hidden}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        tensors, str(path), metadata={"shape": json.dumps(shape), "record": json.dumps(record)}
    )


def head_path(name_or_path: str) -> Path:
    """A packaged head by name, or a file path."""
    if name_or_path in PACKAGED_HEADS:
        return Path(str(resources.files("mmrag").joinpath("data", PACKAGED_HEADS[name_or_path])))
    return Path(name_or_path).expanduser()


def load_head(name_or_path: str) -> tuple[AlignHead, dict[str, Any], str]:
    """(head in float32 eval mode, its training record, sha256 of the file)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = head_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(PACKAGED_HEADS))
        raise ConfigError(
            f"no alignment head at {path} (a packaged head is one of: {known}; "
            "train one with `mmrag train align`)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        shape = json.loads(meta["shape"])
        state = load_file(str(path))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path} is not an mmrag alignment head: {exc}") from exc
    head = AlignHead(shape["in_dim"], shape["out_dim"], shape["hidden"])
    head.load_state_dict({k: v.float() for k, v in state.items()})
    head.eval()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return head, json.loads(meta.get("record", "{}")), digest
