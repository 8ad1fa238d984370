"""`mmrag train align`: fit a LiT-style head on caption pairs, both towers frozen.

The image tower (EfficientNet-Lite + its ConSE prior) and the text tower (the
multilingual USE) never change; their outputs are computed once (three views per
image: as is, mirrored, and a closer centre crop) and cached, then only the small head
of models/align_head.py is trained with a symmetric InfoNCE loss in which every caption
of an image in the batch counts as a positive.

The packaged head (src/mmrag/data/lit_head_flickr8k.safetensors) is reproduced by

    mmrag train align ../shared/data/flickr8k --out src/mmrag/data/lit_head_flickr8k.safetensors

which trains on the Flickr8k "train" half only (see mmrag.eval.image_text.flickr8k_split),
English and Chinese captions, 60 epochs, seed 0.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.errors import ConfigError
from mmrag.eval.image_text import load_flickr8k
from mmrag.models.conse import ConSEEncoder
from mmrag.models.image import open_image, pil_image
from mmrag.progress import progress as progress_bar
from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

VIEWS = ("centre", "mirror", "zoom")


def _view(image: Image.Image, view: str) -> Image.Image:
    if view == "mirror":
        return image.transpose(pil_image().Transpose.FLIP_LEFT_RIGHT)
    if view == "zoom":  # the central 80%: a closer look, as a random crop would give
        w, h = image.size
        dx, dy = round(w * 0.1), round(h * 0.1)
        return image.crop((dx, dy, w - dx, h - dy))
    return image


def image_features(
    encoder: ConSEEncoder,
    images: Sequence[Path],
    cache: Path | None = None,
    show: bool = False,
    batch_size: int = 16,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per view: (pooled features, ConSE prior) for every image, cached on disk."""
    key = hashlib.sha256(
        json.dumps(
            [encoder.params(), encoder.text.info(), [str(p) for p in images], VIEWS]
        ).encode()
    ).hexdigest()[:16]
    file = cache / f"align-features-{key}.npz" if cache else None
    if file is not None and file.is_file():
        stored = np.load(file)
        return {v: (stored[f"{v}_pooled"], stored[f"{v}_prior"]) for v in VIEWS}
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {v: ([], []) for v in VIEWS}
    with progress_bar(show) as bar:
        task = bar.add_task("image features", total=len(images))
        for start in range(0, len(images), batch_size):
            decoded = [
                open_image(p, max_side=encoder.max_side) for p in images[start : start + batch_size]
            ]
            for view in VIEWS:
                pooled, prior = encoder.features([_view(im, view) for im in decoded])
                out[view][0].append(pooled)
                out[view][1].append(prior)
            bar.advance(task, len(decoded))
    result = {v: (np.concatenate(p), np.concatenate(q)) for v, (p, q) in out.items()}
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            f"{v}_{n}": a for v, (p, q) in result.items() for n, a in (("pooled", p), ("prior", q))
        }
        np.savez(file, **arrays)
    return result


def fit_head(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    caption_vecs: np.ndarray,
    owner: np.ndarray,
    hidden: int = 256,
    epochs: int = 60,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
) -> Any:
    """Train an AlignHead on (image view, caption vector) pairs; returned in eval mode."""
    torch = require("torch", "images")
    from mmrag.models.align_head import AlignHead

    if len(caption_vecs) != len(owner):
        raise ConfigError("one owner image per caption is required")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    pooled = {v: torch.from_numpy(p).float() for v, (p, _) in features.items()}
    prior = {v: torch.from_numpy(q).float() for v, (_, q) in features.items()}
    texts = torch.from_numpy(caption_vecs).float()
    owners = torch.from_numpy(owner)
    centre = pooled[VIEWS[0]]
    head = AlignHead(centre.shape[1], texts.shape[1], hidden)
    head.set_standardisation(centre)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    head.train()
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(len(texts)))
        for start in range(0, len(perm), batch_size):
            sel = perm[start : start + batch_size]
            view = VIEWS[int(rng.integers(len(VIEWS)))]
            ids = owners[sel]
            v = head(pooled[view][ids], prior[view][ids])
            logits = head.log_scale.exp() * v @ texts[sel].T
            # captions of the same image in a batch are positives for each other
            same = (ids[:, None] == ids[None, :]).float()
            target = same / same.sum(1, keepdim=True)
            loss = -(target * logits.log_softmax(1)).sum(1).mean()
            loss = loss - (target * logits.T.log_softmax(1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    head.eval()
    return head


def train_align(
    directory: Path,
    out: Path,
    langs: Sequence[str] = ("en", "zh"),
    epochs: int = 60,
    hidden: int = 256,
    seed: int = 0,
    cache: Path | None = None,
    show: bool = False,
) -> dict[str, Any]:
    """The body of `mmrag train align DIR --out FILE`: train on the Flickr8k train half.

    Returns the training record (also stored in the head file's metadata).
    """
    from mmrag.models.align_head import save_head

    started = time.perf_counter()
    encoder = ConSEEncoder(head=None)
    per_lang = [load_flickr8k(directory, lang, split="train") for lang in langs]
    images = per_lang[0].images
    for data in per_lang[1:]:
        if data.images != images:
            raise ConfigError("the caption files list different images")
    captions = [c for data in per_lang for c in data.captions]
    owner = np.concatenate([data.owner for data in per_lang])
    features = image_features(encoder, images, cache, show)
    caption_vecs = encoder.encode_texts(captions)
    head = fit_head(features, caption_vecs, owner, hidden=hidden, epochs=epochs, seed=seed)
    record = {
        "command": f"mmrag train align DIR --epochs {epochs} --hidden {hidden} --seed {seed} "
        f"--langs {','.join(langs)}",
        "data": "Flickr8k (shared/data/flickr8k), train half: sha1(file name)[0] in 8-f",
        "images": len(images),
        "pairs": len(captions),
        "langs": list(langs),
        "epochs": epochs,
        "hidden": hidden,
        "seed": seed,
        "image_tower": encoder.params(),
        "text_tower": encoder.text.info(),
    }
    # no timing in the file: the same data and seed give a byte-identical head
    save_head(head, Path(out), record)
    return {**record, "seconds": round(time.perf_counter() - started, 1)}
