"""Visual refiner on real Flickr8k photos with the packaged LiT encoder; G-Prune vs reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmrag.refine import load_refiner
from mmrag.refine.visual import (
    VisualRefiner,
    candidate_boxes,
    gprune_keep,
    gprune_scores,
    token_boxes,
)
from mmrag.types import Document, Hit, Modality, Query, Ranked

DOG, HORSE = "1019077836_6fc9b15408.jpg", "109202801_c6381eef15.jpg"  # all 5 captions agree


def _reference_gprune(features: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """The G-Prune authors' pruning step (llava_arch.py), transcribed for one image."""
    similarity, temperature, iterate_num = 0.5, 0.03, 5
    normalized = torch.nn.functional.normalize(features, p=2, dim=1)
    a = normalized @ normalized.t()
    a[a < similarity] = 0
    a = a / temperature
    a[abs(a) < 1e-6] = -5000
    a = torch.nn.functional.softmax(a, dim=1)
    degree = torch.sum(a > 0, dim=1)
    a = torch.matrix_power(a, iterate_num)
    w = torch.norm(features, dim=-1).view(1, -1).to(dtype=a.dtype)
    result = (w @ a) / degree
    return result.topk(int(keep_ratio * features.shape[0])).indices.flatten()


@pytest.fixture(scope="module")
def visual() -> VisualRefiner:
    refiner = load_refiner("visual", text_refiner=None)
    assert isinstance(refiner, VisualRefiner)
    return refiner


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> dict[str, Image.Image]:
    folder = data_dir / "flickr8k" / "images"
    return {name: Image.open(folder / name).convert("RGB") for name in (DOG, HORSE)}


def test_gprune_matches_the_reference_on_real_feature_maps(
    visual: VisualRefiner, photos: dict[str, Image.Image]
) -> None:
    for photo in photos.values():
        fmap = visual.token_features(photo)
        rows, cols, dim = fmap.shape
        assert rows * cols >= 140  # a 448-pixel side gives a 14-token side
        tokens = fmap.reshape(-1, dim)
        for ratio in (0.5, 0.25):
            ours = gprune_keep(gprune_scores(tokens), ratio)
            theirs = _reference_gprune(torch.from_numpy(tokens.copy()).double(), ratio)
            assert ours.tolist() == sorted(theirs.tolist())


def test_gprune_prunes_a_flat_region_first(
    visual: VisualRefiner, photos: dict[str, Image.Image]
) -> None:
    photo = photos[DOG]
    panel = Image.new("RGB", (2 * photo.width, photo.height), (128, 128, 128))
    panel.paste(photo, (0, 0))
    fmap = visual.token_features(panel)
    rows, cols, dim = fmap.shape
    kept = gprune_keep(gprune_scores(fmap.reshape(-1, dim)), 0.5)
    assert len(kept) == rows * cols // 2
    on_photo = np.mean(kept % cols < cols // 2)
    assert on_photo >= 0.75  # chance would be 0.5: near-copies of grey are kept once


def _side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    h = min(left.height, right.height)
    left = left.resize((round(left.width * h / left.height), h))
    right = right.resize((round(right.width * h / right.height), h))
    out = Image.new("RGB", (left.width + right.width, h))
    out.paste(left, (0, 0))
    out.paste(right, (left.width, 0))
    return out


def test_crop_follows_the_question_on_a_two_photo_image(
    visual: VisualRefiner, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    hits, truth = [], {}
    for order in ((DOG, HORSE), (HORSE, DOG)):
        image = _side_by_side(photos[order[0]], photos[order[1]])
        path = tmp_path / f"{order[0]}+{order[1]}.jpg"
        image.save(path)
        doc = Document(path.stem, modality=Modality.IMAGE, media=str(path))
        hits.append(Hit(doc, 1.0))
        truth[doc.id] = (order, image.width / 2)
    hits.append(Hit(Document("t", "A caption about a dog, passed through."), 0.5))
    for question, animal in (("a dog", DOG), ("a horse", HORSE)):
        query = Query(question)
        out = visual.refine(Ranked(query, hits), rate=4.0)
        report = out.reports[-1]
        assert out.ids() == [h.doc.id for h in hits]  # order kept, text untouched
        assert out.hits[-1].text == hits[-1].doc.text
        assert report.extra["images"] == 2
        assert report.extra["visual_tokens_out"] * 4 <= report.extra["visual_tokens_in"]
        for hit in out.hits[:2]:
            visual_info = hit.doc.metadata["visual"]
            x0, _, x1, _ = visual_info["crop"]
            (first, _), middle = truth[hit.doc.id]
            assert ((x0 + x1) / 2 < middle) == (first == animal), (question, hit.doc.id)
            assert len(visual_info["kept_tokens"]) == len(visual_info["kept_boxes"])
            for bx0, _, bx1, _ in visual_info["kept_boxes"]:
                assert x0 <= bx0 < bx1 <= x1  # kept tokens lie inside the crop


def test_boxes_and_bad_image_hits(visual: VisualRefiner, tmp_path: Path) -> None:
    boxes = candidate_boxes(300, 200, (2, 3))
    assert boxes[0] == (0, 0, 300, 200) and len(boxes) == 1 + 4 + 9
    assert all(0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 200 for x0, y0, x1, y1 in boxes)
    assert token_boxes((0, 0, 300, 200), 2, 3, np.array([0, 5])) == [
        (0, 0, 100, 100),
        (200, 100, 300, 200),
    ]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    query = Query("a dog")
    hits = [Hit(Document("x", modality=Modality.IMAGE, media=str(broken)), 1.0)]
    out = visual.refine(Ranked(query, hits))
    assert out.ids() == ["x"] and "kept whole" in out.reports[-1].errors[0]
    empty = visual.refine(Ranked(query, []))
    assert empty.hits == [] and empty.reports[-1].errors == ["no hits to refine"]
