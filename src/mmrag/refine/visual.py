"""Visual refiner: the part of an image that matters for the question, in fewer visual tokens.

For each image hit (text hits go to a text refiner, or pass through):

1. Crop: candidate boxes — the whole image and two grids of overlapping tiles (2x2 tiles
   of 2/3 the side, 3x3 tiles of 1/2 the side) — are embedded by the image–text encoder
   and scored by cosine similarity to the question. The best tile replaces the whole
   image only when it scores at least `min_gain` higher (a crop that is no better than
   the full picture would only lose context).
2. Visual tokens: the backbone's feature map of the kept region (one token per cell of
   a `token_side`/32 grid) is pruned with G-Prune (Jiang et al., AAAI 2025): tokens are
   nodes of a cosine-similarity graph (edges below `similarity` cut), a temperature
   softmax makes each row a distribution, feature norms flow through `iterations` steps
   of that graph, and each token's inflow is divided by its degree, so one
   representative of each region (foreground or background) outranks its many
   near-copies. The best `keep_ratio` (1/`rate`) of the tokens are kept.

The result is carried on the hit's document (`metadata["visual"]`): the crop box in
source pixels with its score, the token grid, the kept token indices (row-major) and the
pixel box of every kept token, so a multimodal generator can crop and mask the image.
Visual tokens come from the ConSE/LiT EfficientNet backbone; other encoders still crop.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, IngestError
from mmrag.refine.base import Refiner, check_rate
from mmrag.types import Hit, Modality, Query, Ranked, StageReport

IMAGE_MODALITIES = frozenset({Modality.IMAGE, Modality.PAGE})
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels


def gprune_scores(
    features: np.ndarray,
    similarity: float = 0.5,
    temperature: float = 0.03,
    iterations: int = 5,
) -> np.ndarray:
    """G-Prune importance of each token (n, d) -> (n,): higher is kept first.

    A = cos-similarity graph with edges below `similarity` cut; rows softmaxed at
    `temperature` over the surviving edges; score = (|f|^T A^iterations) / degree.
    """
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = x / np.maximum(norms, 1e-12)[:, None]
    sim = unit @ unit.T
    edge = sim >= similarity
    # An all-zero token (a flat region after ReLU6) has no edge, not even to itself: as
    # in the reference code its row becomes uniform and its degree n.
    isolated = ~edge.any(axis=1)
    edge[isolated] = True
    logits = np.where(edge, sim / temperature, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    degree = edge.sum(axis=1)
    flow = norms @ np.linalg.matrix_power(weights, iterations)
    return flow / degree


def gprune_keep(scores: np.ndarray, keep_ratio: float) -> np.ndarray:
    """Indices of the best max(1, floor(keep_ratio x n)) tokens, in grid order."""
    n = len(scores)
    k = min(n, max(1, int(keep_ratio * n)))
    return np.sort(np.argsort(-scores, kind="stable")[:k])


def candidate_boxes(width: int, height: int, grids: tuple[int, ...] = (2, 3)) -> list[Box]:
    """The whole image, then for each g a g x g grid of tiles overlapping by half a stride.

    A tile spans 2/(g+1) of each side at a stride of 1/(g+1): 2x2 tiles of 2/3, 3x3 of 1/2.
    """
    boxes: list[Box] = [(0, 0, width, height)]
    for g in grids:
        tw, th = 2 * width / (g + 1), 2 * height / (g + 1)
        for row in range(g):
            for col in range(g):
                x0, y0 = col * width / (g + 1), row * height / (g + 1)
                boxes.append((round(x0), round(y0), round(x0 + tw), round(y0 + th)))
    return boxes


def token_boxes(box: Box, rows: int, cols: int, indices: np.ndarray) -> list[Box]:
    """Source-pixel box of each token index (row-major) of a rows x cols grid over `box`."""
    x0, y0, x1, y1 = box
    out = []
    for i in indices.tolist():
        r, c = divmod(int(i), cols)
        out.append(
            (
                round(x0 + c * (x1 - x0) / cols),
                round(y0 + r * (y1 - y0) / rows),
                round(x0 + (c + 1) * (x1 - x0) / cols),
                round(y0 + (r + 1) * (y1 - y0) / rows),
            )
        )
    return out


class VisualRefiner(Refiner):
    """Question-relevant crop selection plus G-Prune visual-token pruning for image hits.

    `encoder` is an image-encoder registry name ("lit", "conse", "clip", "siglip") with
    `encoder_params`; `text_refiner` (a refiner name, or None / "none" to pass text through)
    handles the text hits of a mixed result with the same budget.
    """

    name = "visual"

    def __init__(
        self,
        encoder: str = "lit",
        encoder_params: dict[str, Any] | None = None,
        grids: tuple[int, ...] | list[int] = (2, 3),
        min_gain: float = 0.02,
        keep_ratio: float = 0.5,
        token_side: int = 448,
        similarity: float = 0.5,
        temperature: float = 0.03,
        iterations: int = 5,
        text_refiner: str | None = "extractive",
        text_params: dict[str, Any] | None = None,
        instruction: str = "",
    ) -> None:
        super().__init__(instruction)
        if not 0.0 < keep_ratio <= 1.0:
            raise ConfigError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
        if token_side < 64 or iterations < 1 or not 0 < temperature:
            raise ConfigError("need token_side >= 64, iterations >= 1 and temperature > 0")
        if any(g < 1 for g in grids):
            raise ConfigError(f"grid sizes must be >= 1, got {list(grids)}")
        self.encoder_name = encoder
        self.encoder_params = dict(encoder_params or {})
        self.grids = tuple(grids)
        self.min_gain = min_gain
        self.keep_ratio = keep_ratio
        self.token_side = token_side
        self.similarity = similarity
        self.temperature = temperature
        self.iterations = iterations
        self.text_refiner_name = text_refiner
        self.text_params = dict(text_params or {})

    @cached_property
    def encoder(self) -> Any:
        from mmrag.models.image import load_image_encoder

        return load_image_encoder(self.encoder_name, **self.encoder_params)

    @cached_property
    def text_refiner(self) -> Refiner | None:
        if self.text_refiner_name in (None, "", "none"):  # TOML has no null
            return None
        from mmrag.refine import load_refiner

        return load_refiner(
            self.text_refiner_name, instruction=self.instruction, **self.text_params
        )

    # -- images --------------------------------------------------------------------------

    def choose_crop(self, image: Any, question: str) -> tuple[Box, float, float]:
        """(best box, its score, the whole image's score) for the question."""
        width, height = image.size
        boxes = candidate_boxes(width, height, self.grids)
        vectors = self.encoder.encode_images([image.crop(b) for b in boxes], batch_size=16)
        scores = vectors @ self.encoder.encode_texts([question])[0]
        best = int(np.argmax(scores))
        if best != 0 and scores[best] < scores[0] + self.min_gain:
            best = 0
        return boxes[best], float(scores[best]), float(scores[0])

    def token_features(self, image: Any) -> np.ndarray | None:
        """(rows, cols, d) backbone feature map of `image`, or None if the encoder has none."""
        backbone = getattr(self.encoder, "backbone", None)
        if backbone is None:
            return None
        import torch
        from PIL import Image

        # Keep the aspect ratio; both sides a multiple of the backbone's stride of 32.
        scale = self.token_side / max(image.size)
        w = max(32, round(image.size[0] * scale / 32) * 32)
        h = max(32, round(image.size[1] * scale / 32) * 32)
        pixels = np.asarray(image.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
        x = torch.from_numpy(((pixels - 127.0) / 128.0).transpose(2, 0, 1)[None].copy())
        with torch.inference_mode():
            fmap = backbone.net.extract_features(x)[0]
        return fmap.permute(1, 2, 0).numpy()

    def refine_image(self, hit: Hit, question: str, keep_ratio: float) -> tuple[Hit, dict]:
        from mmrag.models.image import open_image

        if not hit.doc.media:
            raise IngestError(hit.doc.id, "an image hit without a media path")
        image = open_image(hit.doc.media, max_side=self.encoder.max_side)
        box, score, whole = self.choose_crop(image, question)
        visual: dict[str, Any] = {
            "size": list(image.size),
            "crop": list(box),
            "crop_score": round(score, 4),
            "image_score": round(whole, 4),
        }
        fmap = self.token_features(image.crop(box))
        if fmap is not None:
            rows, cols, dim = fmap.shape
            scores = gprune_scores(
                fmap.reshape(-1, dim), self.similarity, self.temperature, self.iterations
            )
            kept = gprune_keep(scores, keep_ratio)
            visual.update(
                grid=[rows, cols],
                tokens_in=rows * cols,
                kept_tokens=kept.tolist(),
                kept_boxes=[list(b) for b in token_boxes(box, rows, cols, kept)],
            )
        metadata = {**hit.doc.metadata, "visual": visual}
        out = Hit(
            doc=replace(hit.doc, metadata=metadata),
            score=hit.score,
            scores={**hit.scores, "visual": score},
            passage=hit.passage,
            kept=list(hit.kept),
        )
        return out, visual

    def refine(
        self,
        ranked: Ranked,
        budget_tokens: int | None = None,
        rate: float | None = None,
        *,
        query: Query | None = None,
    ) -> Ranked:
        """Image hits cropped and token-pruned (1/`rate` of the tokens, else `keep_ratio`);
        text hits refined by the text refiner with `budget_tokens` / `rate`."""
        query = query or ranked.query
        check_rate(rate, budget_tokens)
        start = time.perf_counter()
        report = StageReport(stage="refine", name=self.name, n_in=len(ranked.hits))
        images = [i for i, h in enumerate(ranked.hits) if h.doc.modality in IMAGE_MODALITIES]
        texts = [i for i, h in enumerate(ranked.hits) if i not in set(images)]
        text_out: dict[str, Hit] = {}
        if texts and self.text_refiner is not None:
            part = Ranked(ranked.query, [ranked.hits[i] for i in texts])
            refined = self.text_refiner.refine(
                part, budget_tokens=budget_tokens, rate=rate, query=query
            )
            text_out = {h.doc.id: h for h in refined.hits}
            text_report = refined.reports[-1]
            report.errors.extend(text_report.errors)
            report.model_calls += text_report.model_calls
            report.extra["text"] = text_report.extra
        elif texts:
            text_out = {ranked.hits[i].doc.id: ranked.hits[i] for i in texts}
        keep_ratio = 1.0 / rate if rate is not None else self.keep_ratio
        out: list[Hit] = []
        tokens_in = tokens_out = 0
        crops = []
        for i, hit in enumerate(ranked.hits):
            if i not in images:
                if hit.doc.id in text_out:
                    out.append(text_out[hit.doc.id])
                continue
            try:
                refined_hit, visual = self.refine_image(hit, query.text or " ", keep_ratio)
            except IngestError as exc:
                report.errors.append(f"{hit.doc.id}: kept whole, {exc}")
                out.append(hit)
                continue
            out.append(refined_hit)
            crops.append({"id": hit.doc.id, "crop": visual["crop"], "size": visual["size"]})
            tokens_in += visual.get("tokens_in", 0)
            tokens_out += len(visual.get("kept_tokens", []))
            if "tokens_in" not in visual:
                report.errors.append(f"{hit.doc.id}: encoder has no token map; cropped only")
        if not ranked.hits:
            report.errors.append("no hits to refine")
        report.n_out = len(out)
        report.extra.update(
            images=len(images),
            crops=crops,
            visual_tokens_in=tokens_in,
            visual_tokens_out=tokens_out,
            visual_rate=round(tokens_in / tokens_out, 3) if tokens_out else 1.0,
            keep_ratio=round(keep_ratio, 4),
            dropped=[h.doc.id for h in ranked.hits if h.doc.id not in {o.doc.id for o in out}],
        )
        report.seconds = time.perf_counter() - start
        return ranked.with_hits(out, report)


__all__ = [
    "VisualRefiner",
    "candidate_boxes",
    "gprune_keep",
    "gprune_scores",
    "token_boxes",
]
