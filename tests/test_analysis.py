"""Measuring modules: trainable parameters, FLOPs, projector cost, influence maps (analysis.py; lessons 05, 08)."""

import pytest
import torch

from mobilevlm_mini.analysis import cost_of, count_flops, influence_map, projector_cost, trainable_parameters
from mobilevlm_mini.projectors import QFormer, build_projector


# Real MobileVLM sizes: CLIP ViT-L/14 at 336 px gives 576 tokens of width 1024; MobileLLaMA 1.4B is 2048 wide.
# Reference counts from the official vision_projector.py (torchvision InvertedResidual + SE, timm LayerNorm2d):
# LDP = MLP 6,295,552 + 2 blocks x 6,320,640 = 18,936,832 ("about 19M"); LDPv2 = MLP + PEG 20,480 = 6,316,032.
@pytest.mark.parametrize("name,reference", [("ldp", 18_936_832), ("ldpv2", 6_316_032), ("mlp", 6_295_552)])
def test_parameter_counts_at_real_mobilevlm_sizes(name, reference):
    params = trainable_parameters(build_projector(name, 1024, 2048))
    assert abs(params - reference) / reference < 0.01
    assert round(params / 1e6) == {"ldp": 19, "ldpv2": 6, "mlp": 6}[name]


def test_flops_of_a_linear_layer_and_the_cost_table():
    assert count_flops(torch.nn.Linear(8, 4), torch.zeros(1, 10, 8)) == 2 * 10 * 8 * 4
    cost = projector_cost("mlp", 16, 8, 36)
    assert cost == {"projector": "mlp", "tokens_in": 36, "tokens_out": 36, "params": 16 * 8 + 8 + 8 * 8 + 8,
                    "flops": 2 * 36 * (16 * 8 + 8 * 8)}
    resampler = projector_cost("resampler", 16, 8, 36, num_queries=4, num_heads=2)
    assert resampler["tokens_out"] == 4 and resampler["flops"] > 2 * 2 * 4 * 36 * 8  # attention is counted


def test_cost_of_a_built_projector_matches_the_registry_and_the_q_former_formula():
    torch.manual_seed(0)
    assert cost_of(build_projector("ldp", 16, 8), 36) == projector_cost("ldp", 16, 8, 36)  # values or meta: same
    n, d_v, d_t, q, d, depth = 36, 16, 8, 5, 12, 4  # cross-attention in layers 0 and 2
    cost = cost_of(QFormer(d_v, d_t, num_queries=q, dim=d, depth=depth, num_heads=2), n)
    per_layer = 24 * q * d * d + 4 * q * q * d  # self-attention projections and scores, feed-forward of width 4d
    per_cross = 4 * q * d * d + 4 * n * d_v * d + 4 * q * n * d  # q/out, keys and values of every image token, scores
    assert cost["tokens_out"] == q and cost["flops"] == depth * per_layer + 2 * per_cross + 2 * q * d * d_t
    with torch.device("meta"):
        meta = QFormer(d_v, d_t, num_queries=q, dim=d, depth=depth, num_heads=2)
    assert cost_of(meta, n) == cost


def test_influence_maps_show_each_projectors_window():
    torch.manual_seed(0)
    x = torch.randn(64, 12)  # an 8 x 8 grid

    def seen(name: str, index: int, **o) -> torch.Tensor:
        return (influence_map(build_projector(name, 12, 8, **o), x, index) > 1e-6).view(8, 8)

    mlp = seen("mlp", 9)
    assert mlp.sum() == 1 and mlp[1, 1]
    pool = seen("pool", 5)  # output (1, 1) of the 4 x 4 grid averages input rows 2-3, cols 2-3
    assert pool.sum() == 4 and pool[2:4, 2:4].all()
    shuffle = seen("pixel_shuffle", 5)
    assert torch.equal(shuffle, pool)
    ldp = influence_map(build_projector("ldp", 12, 8), x, 5).view(8, 8)
    window = torch.zeros(8, 8, dtype=torch.bool)
    window[0:5, 0:5] = True  # 3x3 (stride 1) then 3x3 stride 2 around input (2, 2): a 5 x 5 window
    assert ldp[window].min() > 10 * ldp[~window].max()  # outside it, only squeeze-excitation's global average
    ldpv2 = seen("ldpv2", 5)  # 2x2 pooling, then the PEG's 3x3 on the pooled 4 x 4 grid: input rows and cols 0-5
    assert ldpv2[0:6, 0:6].all() and ldpv2.sum() == 36
    assert seen("resampler", 0, num_queries=4, num_heads=2).all()  # a query reads the whole image
    with pytest.raises(ValueError, match="index 16 is out of range: this projector returns 16 tokens"):
        influence_map(build_projector("ldp", 12, 8), x, 16)


def test_trainable_parameters_skip_frozen_ones():
    layer = torch.nn.Linear(4, 3)
    layer.bias.requires_grad_(False)
    assert trainable_parameters(layer) == 12


def test_probes_read_the_facts_that_the_tokens_hold_and_not_the_others():
    """cell_facts labels each cell and the count; a probe on tokens that encode them reads them back, a probe on
    noise does not (lesson 08's test of "lost or not yet learned")."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from mobilevlm_mini.analysis import cell_facts, probe_visual_tokens
    from mobilevlm_mini.data import generate_dataset, scene_objects

    dataset = generate_dataset(1300, seed=4)
    facts = cell_facts(dataset)
    first = scene_objects(dataset[0])
    assert facts["count"][0] == len(first) and (facts["shape"][0] > 0).sum() == len(first)
    obj = first[0]
    assert facts["colour"][0, obj.row * 3 + obj.col] > 0
    encoded = torch.cat([F.one_hot(facts["shape"], 6).flatten(1), F.one_hot(facts["colour"], 7).flatten(1),
                         F.one_hot(facts["count"], 5)], dim=1).float()  # (N, 9 * 6 + 9 * 7 + 5)
    model = SimpleNamespace(project=lambda features: features)  # visual tokens = the features given

    def split(features, rows):
        return SimpleNamespace(features=features[rows].unsqueeze(1), dataset=dataset.select(rows))

    train, test = list(range(1000)), list(range(1000, 1300))
    holds = probe_visual_tokens(model, split(encoded, train), split(encoded, test), steps=200)
    assert holds == {"shape": 1.0, "colour": 1.0, "count": 1.0}
    torch.manual_seed(0)
    noise = torch.randn_like(encoded)
    lost = probe_visual_tokens(model, split(noise, train), split(noise, test), steps=200)
    assert lost["shape"] < 0.5 and lost["colour"] < 0.5
    assert probe_visual_tokens(model, split(encoded, train), split(encoded, test), steps=200, tokens="patch") == holds
    with pytest.raises(ValueError, match="tokens must be 'visual' or 'patch'"):
        probe_visual_tokens(model, split(encoded, train), split(encoded, test), tokens="pixels")
