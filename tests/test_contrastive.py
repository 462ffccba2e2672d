"""CLIP and SigLIP losses against hand computations, the caption encoder, training and the cached encoder."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from mobilevlm_mini import contrastive as C
from mobilevlm_mini import data
from mobilevlm_mini import encoders as E
from mobilevlm_mini import zero_shot as Z
from mobilevlm_mini.data import SceneObject, generate_dataset
from mobilevlm_mini.vision import ViT, ViTConfig

TINY = C.ContrastiveConfig(
    vit=ViTConfig(patch_size=16, dim=16, depth=2, heads=2), text=C.TextConfig(dim=16, depth=1, heads=2), embed_dim=8
)
TINY_RECIPE = C.PretrainConfig(model=TINY, n_train=32, steps=4, batch_size=8, warmup=2)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path))


IMAGES = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
TEXTS = torch.tensor([[0.6, 0.8], [0.0, 2.0]])  # second row has length 2: the loss normalises it


def test_clip_loss_by_hand():
    # cosines: image 0 . text 0 = 0.6, image 0 . text 1 = 0, image 1 . text 0 = 0.8, image 1 . text 1 = 1
    scale = 2.0
    cos = [[0.6, 0.0], [0.8, 1.0]]
    ce = lambda row, i: -scale * row[i] + math.log(sum(math.exp(scale * v) for v in row))  # noqa: E731
    image_to_text = (ce(cos[0], 0) + ce(cos[1], 1)) / 2
    text_to_image = (ce([cos[0][0], cos[1][0]], 0) + ce([cos[0][1], cos[1][1]], 1)) / 2
    expected = (image_to_text + text_to_image) / 2
    assert C.clip_loss(IMAGES, TEXTS, torch.tensor(math.log(scale))).item() == pytest.approx(expected, rel=1e-6)


def test_siglip_loss_by_hand():
    scale, bias = 3.0, -1.0
    cos = [[0.6, 0.0], [0.8, 1.0]]
    log_sigmoid = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    total = sum(log_sigmoid((1 if i == j else -1) * (scale * cos[i][j] + bias)) for i in range(2) for j in range(2))
    loss = C.siglip_loss(IMAGES, TEXTS, torch.tensor(math.log(scale)), torch.tensor(bias))
    assert loss.item() == pytest.approx(-total / 2, rel=1e-6)


def test_siglip_matches_generalise_the_diagonal():
    images, texts = torch.randn(3, 4), torch.randn(5, 4)  # 3 images, their 3 captions, 2 negatives
    log_scale, bias = torch.tensor(1.0), torch.tensor(-2.0)
    diagonal = torch.eye(3, 5, dtype=torch.bool)
    assert torch.equal(C.siglip_loss(images, texts, log_scale, bias),
                       C.siglip_loss(images, texts, log_scale, bias, diagonal))
    both = diagonal.clone()
    both[1, 0] = True  # caption 0 is true of image 1 too: that pair now pulls together instead of apart
    cos = F.normalize(images[1], dim=0) @ F.normalize(texts[0], dim=0)
    logit = log_scale.exp() * cos + bias
    change = (-F.logsigmoid(logit) + F.logsigmoid(-logit)) / 3
    assert C.siglip_loss(images, texts, log_scale, bias, both).item() == pytest.approx(
        (C.siglip_loss(images, texts, log_scale, bias) + change).item(), rel=1e-5)


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_losses_prefer_matching_pairs_and_train_their_temperature(name):
    torch.manual_seed(0)
    loss_fn = C.LOSSES[name]()
    images = torch.randn(6, 8)
    matched = loss_fn(images, images + 0.1 * torch.randn(6, 8))
    shuffled = loss_fn(images, images.roll(1, dims=0))
    assert matched < shuffled
    matched.backward()
    assert loss_fn.log_scale.grad is not None


def test_loss_starting_values():
    assert C.ClipLoss().log_scale.exp().item() == pytest.approx(1 / 0.07)
    siglip = C.SigLipLoss()
    assert siglip.log_scale.exp().item() == pytest.approx(10.0) and siglip.bias.item() == -10.0
    with pytest.raises(ValueError, match="unknown loss 'triplet'; expected one of clip, siglip"):
        C.ContrastiveConfig(loss="triplet")


def test_encode_texts():
    ids = C.encode_texts(["a red circle", "a small blue square in the centre"], max_len=10)
    assert ids.shape == (2, 10)
    assert ids[0, 3] == C.CAPTIONS.eos_id == 1 and (ids[0, 4:] == C.CAPTIONS.pad_id).all() and C.CAPTIONS.pad_id == 0
    assert [C.WORDS[i] for i in ids[0, :3]] == ["a", "red", "circle"]
    with pytest.raises(ValueError, match=r"unknown words \['hexagon', 'photo'\]"):
        C.encode_texts(["a photo of a hexagon"], 10)
    with pytest.raises(ValueError, match="has 3 words; at most 2 fit"):
        C.encode_texts(["a red circle"], 3)


def test_text_encoder_ignores_padding_and_reads_order():
    torch.manual_seed(0)
    encoder = C.TextEncoder(C.TextConfig(dim=16, depth=1, heads=2)).eval()
    short = encoder(C.encode_texts(["a red circle", "a blue square"], 10))
    long = encoder(C.encode_texts(["a red circle", "a blue square"], 30))
    torch.testing.assert_close(short, long)
    swapped = encoder(C.encode_texts(["circle red a"], 10))
    assert not torch.allclose(short[0], swapped[0]), "word order must matter"


def test_model_embeddings_are_unit_vectors():
    torch.manual_seed(0)
    model = C.ContrastiveModel(TINY)
    images, ids = torch.rand(3, 3, 48, 48), C.encode_texts(["a red circle"] * 3, 40)
    assert model.encode_images(images).norm(dim=-1).allclose(torch.ones(3))
    assert model.encode_texts(ids).shape == (3, 8)
    assert model(images, ids).ndim == 0


def test_training_is_deterministic_and_the_cache_round_trips(monkeypatch):
    dataset = generate_dataset(32, seed=0)
    images, scenes = C.prepare_pairs(dataset)
    assert images.dtype == torch.uint8 and images.shape == (32, 3, 48, 48) and len(scenes) == 32
    assert data.caption(scenes[0]) == dataset[0]["caption"]
    first, history = C.train_contrastive(TINY_RECIPE, images, scenes, progress=False)
    second, _ = C.train_contrastive(TINY_RECIPE, images, scenes, progress=False)
    assert len(history["loss"]) == 4
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    monkeypatch.setattr(E, "default_recipe",
                        lambda quick, loss, *args, **kwargs:
                        replace(TINY_RECIPE, model=replace(TINY, loss=loss)))
    path = E.recipe_path(TINY_RECIPE)
    assert not path.exists()
    built = E.pretrained_model(quick=True, progress=False)  # trains and caches
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    loaded = E.pretrained_model(quick=True, progress=False)  # loads
    for a, b in zip(built.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    vit = E.pretrained_vit(quick=True, progress=False)
    assert isinstance(vit, ViT) and not vit.training and not any(p.requires_grad for p in vit.parameters())
    assert vit(images[:2].float() / 255, layer=-2).shape == (2, 9, 16)  # 48 px / 16 px patches: a 3 x 3 grid


def _true_for(text: str, scene: list) -> bool:
    """Does every phrase of a caption describe an object of the scene (with its place, if named)?"""
    phrases = [p.strip() for p in text.replace(" and ", ", ").split(",")]
    return all(any(p.startswith(f"a {o.size} {o.name}") and (p == f"a {o.size} {o.name}" or p.endswith(o.position))
                   for o in scene) for p in phrases)


def test_sampled_captions_vary_and_negatives_are_false():
    scene = [SceneObject("circle", "red", "large", 0, 0), SceneObject("square", "blue", "small", 1, 1),
             SceneObject("cross", "green", "small", 2, 2)]
    recipe = C.PretrainConfig(partial=0.5, no_places=0.5)
    captions, negatives = C.sample_captions([scene] * 400, recipe, torch.Generator().manual_seed(0))
    assert data.caption(scene) in captions and "a large red circle" in captions and "a small blue square" in captions
    assert 0.25 < sum(c == data.caption(scene) for c in captions) / 400 < 0.42  # (1/2 + 1/2 * 1/3) * 1/2 = 1/3
    assert all(_true_for(c, scene) for c in captions)
    assert not any(_true_for(n, scene) for n in negatives)
    changed = [sum(a != b for a, b in zip(c.split(), n.split(), strict=True))
               for c, n in zip(captions, negatives, strict=True)]
    assert set(changed) == {1}, "a hard negative differs from its caption in exactly one word"
    full, _ = C.sample_captions([scene] * 5, replace(recipe, partial=0.0, no_places=0.0), torch.Generator())
    assert full == [data.caption(scene)] * 5


def test_hard_negatives_only_add_columns():
    torch.manual_seed(0)
    f, g, extra = torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 8)
    scale = torch.tensor(1.5)
    # CLIP: images choose among B + K captions; captions choose among the B images only
    s = scale.exp() * F.normalize(f, dim=-1) @ F.normalize(torch.cat([g, extra]), dim=-1).T  # (4, 7)
    rows = -(s.diag() - s.logsumexp(dim=1)).mean()
    cols = -(s[:, :4].diag() - s[:, :4].logsumexp(dim=0)).mean()
    torch.testing.assert_close(C.clip_loss(f, torch.cat([g, extra]), scale), (rows + cols) / 2)
    assert C.clip_loss(f, torch.cat([g, extra]), scale) > C.clip_loss(f, g, scale)
    # SigLIP: every extra caption is one more negative per image
    bias = torch.tensor(-2.0)
    negatives_only = -F.logsigmoid(-(scale.exp() * F.normalize(f, dim=-1) @ F.normalize(extra, dim=-1).T
                                     + bias)).sum() / 4
    torch.testing.assert_close(C.siglip_loss(f, torch.cat([g, extra]), scale, bias),
                               C.siglip_loss(f, g, scale, bias) + negatives_only)


def test_recipes_never_share_a_cache_folder():
    paths = {E.recipe_path(C.default_recipe(quick, loss)) for quick in (True, False) for loss in C.LOSSES}
    assert len(paths) == 4
    assert E.recipe_path(replace(TINY_RECIPE, steps=5)) != E.recipe_path(TINY_RECIPE)


def test_evaluation_helpers():
    torch.manual_seed(0)
    model = C.ContrastiveModel(TINY).eval()
    dataset = generate_dataset(16, seed=2)
    images, _ = C.prepare_pairs(dataset)
    assert 0.0 <= Z.retrieval_accuracy(model, images, C.encode_texts(dataset["caption"], 40)) <= 1.0
    prompts, classes = Z.largest_object_prompts()
    assert len(prompts) == len(classes) == 30 and prompts[0] == "a large red circle"
    result = Z.zero_shot_largest(model, dataset)
    assert result["n"] == len(result["truth"]) <= 16 and 0.0 <= result["accuracy"] <= 1.0
    scenes = Z.one_large(dataset)
    assert len(scenes) == result["n"]
    assert all(sum(o["size"] == "large" for o in objs) == 1 for objs in scenes["objects"])
    assert all(classes[k] in {(o["colour"], o["shape"]) for o in objs}
               for k, objs in zip(Z.largest_object_labels(scenes).tolist(), scenes["objects"], strict=True))
    probe = Z.linear_probe_largest(model, generate_dataset(32, seed=5), dataset, steps=5)
    assert torch.equal(probe["truth"], result["truth"]) and probe["n"] == result["n"] and probe["n_train"] <= 32


def test_linear_probe_learns_separable_classes_deterministically():
    torch.manual_seed(0)
    centres = 3 * torch.randn(3, 8)  # three well separated classes
    y = torch.arange(60) % 3
    x = centres[y] + torch.randn(60, 8)
    predicted = Z.linear_probe(x[:45], y[:45], x[45:], classes=3, steps=200)
    assert (predicted == y[45:]).float().mean() > 0.9
    assert torch.equal(predicted, Z.linear_probe(x[:45], y[:45], x[45:], classes=3, steps=200))


def test_tuning_captions_are_labelled_by_the_scenes():
    scenes = [C.prepare_pairs(generate_dataset(16, seed=3))[1][i] for i in range(16)]
    texts, matches = C.tuning_captions(scenes, whole_scene=0.5, generator=torch.Generator().manual_seed(0))
    assert texts == sorted(set(texts)) and matches.shape == (16, len(texts)) and matches.dtype == torch.bool
    # a caption is true of every scene that holds all it names (at those places, if named)
    for scene, row in zip(scenes, matches, strict=True):
        for text, match in zip(texts, row, strict=True):
            assert bool(match) == _true_for(text, scene), (text, scene)
    assert matches.any(dim=1).all()  # every scene has its own true caption in the batch
    assert (~matches).any(dim=1).all()  # and at least its hard negative
    assert any(" and " in t for t in texts) and any(" and " not in t for t in texts)

    two = [SceneObject("circle", "red", "large", 0, 0), SceneObject("square", "blue", "small", 1, 1)]
    three = two + [SceneObject("cross", "green", "small", 2, 2)]
    texts, matches = C.tuning_captions([two, three], whole_scene=1.0, generator=torch.Generator().manual_seed(0))
    told = [t for t in (data.caption(two, True), data.caption(two, False)) if t in texts]
    # the two-object scene's caption is true of the three-object one
    assert told and all(matches[1, texts.index(t)] for t in told)
    twins = [SceneObject("circle", "red", "small", 0, 0), SceneObject("circle", "red", "small", 2, 2)]
    assert (C._claims(twins[:1], False) <= C._claims(twins, False)
            and not C._claims(twins, False) <= C._claims(twins[:1], False))


def test_text_tuning_locks_the_vit_and_caches_beside_the_encoder(monkeypatch):
    images, scenes = C.prepare_pairs(generate_dataset(32, seed=0))
    model, _ = C.train_contrastive(TINY_RECIPE, images, scenes, progress=False)
    tuning = C.TextTuningConfig(steps=3, batch_size=8, warmup=1)
    tuned, history = C.tune_text(model, tuning, images, scenes, progress=False)
    again, _ = C.tune_text(model, tuning, images, scenes, progress=False)
    assert len(history["loss"]) == 3
    for (name, a), b, c in zip(model.state_dict().items(), tuned.state_dict().values(), again.state_dict().values(),
                               strict=True):
        assert torch.equal(b, c), name  # deterministic
        if not name.startswith("loss."):  # the pretraining loss's temperature is not used here
            assert torch.equal(a, b) == name.startswith("vit."), name  # the ViT alone is unchanged

    monkeypatch.setattr(E, "default_recipe",
                        lambda quick, loss, *args, **kwargs:
                        replace(TINY_RECIPE, model=replace(TINY, loss=loss)))
    monkeypatch.setattr(E, "default_text_tuning", lambda quick: tuning)
    # trains the encoder, then tunes its text side
    built = E.pretrained_model(quick=True, progress=False, text_tuned=True)
    path = E.tuned_path(TINY_RECIPE, tuning)
    assert path.parent == E.recipe_path(TINY_RECIPE).parent and (path / "model.safetensors").is_file()
    assert path.name.startswith(E.recipe_path(TINY_RECIPE).name + "-lit-")
    loaded = E.pretrained_model(quick=True, progress=False, text_tuned=True)
    plain = E.pretrained_model(quick=True, progress=False)
    for (name, a), b, c in zip(built.state_dict().items(), loaded.state_dict().values(), plain.state_dict().values(),
                               strict=True):
        assert torch.equal(a, b), name
        if not name.startswith("loss."):
            assert torch.equal(a, c) == name.startswith("vit."), name
