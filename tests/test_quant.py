"""Weight quantization: error bounds, int4 packing, QuantLinear, whole models, sizes on disk, answers against fp32."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mobilevlm_mini.train as train_module
from mobilevlm_mini.config import StageConfig, TrainConfig, VLMConfig
from mobilevlm_mini.data import generate_dataset, shapes_tokenizer
from mobilevlm_mini.language import MobileLlama, preset
from mobilevlm_mini.quant import (
    FusedQuantLinear,
    QuantLinear,
    QuantSpec,
    agreement,
    pack_int4,
    quantize,
    quantize_model,
    size_on_disk,
    to_blocks,
    unpack_int4,
)
from mobilevlm_mini.vision import ViT, ViTConfig

SPECS = [
    QuantSpec(bits, symmetric, granularity, 32)
    for bits in (8, 4) for symmetric in (True, False) for granularity in ("tensor", "channel", "group")
]


def weight(seed: int = 0) -> torch.Tensor:
    """A (48, 96) weight with trained-like spread, a few outliers and one all-zero row."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(48, 96, generator=g) * 0.02
    w[3, 5], w[10, 70], w[20] = 0.5, -0.3, 0.0
    return w


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"int{s.bits}-{'sym' if s.symmetric else 'asym'}-{s.granularity}")
def test_round_trip_error_is_at_most_half_a_step(spec):
    w = weight()
    q = quantize(w, spec)
    error = to_blocks((q.dequantize() - w).abs(), spec)  # (n_blocks, block_size)
    half_step = q.scale.float() / 2  # (n_blocks, 1)
    assert (error <= half_step * (1 + 1e-5) + 1e-9).all()
    assert (q.integers() >= spec.qmin).all() and (q.integers() <= spec.qmax).all()


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.symmetric], ids=lambda s: f"int{s.bits}-{s.granularity}")
def test_zero_stays_exactly_zero_with_a_zero_point(spec):
    w = weight()
    w[:, ::7] = 0.0
    assert (quantize(w, spec).dequantize()[w == 0] == 0).all()


def test_finer_blocks_give_smaller_errors():
    w = weight()
    errors = [(quantize(w, QuantSpec(4, True, g, 32)).dequantize() - w).pow(2).mean()
              for g in ("tensor", "channel", "group")]
    assert errors[0] > errors[1] > errors[2]


def test_int4_packing_round_trips_two_values_per_byte():
    values = torch.randint(0, 16, (5, 34), generator=torch.Generator().manual_seed(1))
    packed = pack_int4(values)
    assert packed.dtype == torch.uint8 and packed.shape == (5, 17)
    assert torch.equal(unpack_int4(packed), values.to(torch.uint8))
    assert pack_int4(torch.tensor([3, 12])).item() == 3 + 12 * 16  # first value in the low nibble


def test_int4_packing_refuses_bad_values():
    with pytest.raises(ValueError, match="even last dimension"):
        pack_int4(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        pack_int4(torch.tensor([0, 16]))


def test_storage_is_one_byte_or_half_a_byte_per_weight():
    w = weight()
    int8 = quantize(w, QuantSpec(8, True, "channel"))
    int4 = quantize(w, QuantSpec(4, False, "group", 32))
    assert int8.data.dtype == torch.int8 and int8.nbytes() == w.numel() + 2 * 48  # + one float16 scale per row
    assert int4.nbytes() == w.numel() // 2 + (2 + 1) * w.numel() // 32  # + float16 scale and uint8 zero per group


def test_spec_refuses_bad_settings():
    with pytest.raises(ValueError, match="bits must be 8 or 4"):
        QuantSpec(bits=3)
    with pytest.raises(ValueError, match="granularity"):
        QuantSpec(granularity="row")
    with pytest.raises(ValueError, match="does not divide"):
        quantize(weight(), QuantSpec(4, True, "group", 64))


def test_quant_linear_computes_with_the_dequantized_weight():
    torch.manual_seed(0)
    linear = nn.Linear(64, 24)
    layer = QuantLinear(linear, QuantSpec(4, True, "group", 32))
    x = torch.randn(3, 5, 64)
    assert torch.allclose(layer(x), F.linear(x, layer.quantized.dequantize(), linear.bias), atol=1e-6)
    assert (layer(x) - linear(x)).abs().max() < 0.1 * linear(x).abs().max()
    assert set(layer.state_dict()) == {"qweight", "scale", "bias"}  # symmetric: no zero point


def test_quantize_model_replaces_linears_except_skipped_and_keeps_the_original():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64)))
    quantized = quantize_model(model, bits=8, skip=["2"])
    assert isinstance(quantized[0], QuantLinear) and isinstance(quantized[2][0], nn.Linear)
    assert isinstance(model[0], nn.Linear)  # the original is untouched
    x = torch.randn(4, 32)
    assert (quantized(x) - model(x)).abs().max() < 0.05


@pytest.mark.parametrize("spec", [QuantSpec(8), QuantSpec(4, True, "group", 32)], ids=["int8", "int4"])
def test_fused_kernels_compute_what_quant_linear_computes(spec):
    """Same integers as QuantLinear, multiplied by PyTorch's kernels: only bfloat16 activations and scales differ."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    by_hand, fused = QuantLinear(linear, spec), FusedQuantLinear(linear, spec)
    x = torch.randn(3, 5, 64)
    y = fused(x)
    assert y.shape == (3, 5, 32) and y.dtype == torch.float32
    assert (y - by_hand(x)).norm() < 0.01 * by_hand(x).norm()  # bfloat16 keeps ~3 significant digits
    stored = sum(t.numel() * t.element_size() for t in fused.state_dict().values())
    assert stored < (0.3 if spec.bits == 8 else 0.2) * linear.weight.numel() * 4 + 32 * 4  # bytes of fp32 + bias


def test_dynamic_int8_kernel_uses_the_same_integers():
    """int8 activations (one scale per call) add a second rounding: within 2% of QuantLinear, same bytes stored."""
    torch.manual_seed(0)
    linear, spec = nn.Linear(64, 32), QuantSpec(8)
    by_hand, dynamic = QuantLinear(linear, spec), FusedQuantLinear(linear, spec, int8_activations=True)
    assert torch.equal(dynamic.qweight, by_hand.qweight)
    x = torch.randn(3, 5, 64)
    y = dynamic(x)
    assert y.shape == (3, 5, 32) and y.dtype == torch.float32
    assert (y - by_hand(x)).norm() < 0.02 * by_hand(x).norm()
    quantized = quantize_model(nn.Sequential(linear), bits=8, fused=True, int8_activations=True)
    assert quantized[0].int8_activations and "int8 (dynamic)" in repr(quantized[0])


def test_fused_kernels_refuse_what_they_cannot_run():
    with pytest.raises(ValueError, match="symmetric int8 per channel or symmetric int4 in groups"):
        FusedQuantLinear(nn.Linear(64, 32), QuantSpec(4, False, "group", 32))
    with pytest.raises(ValueError, match="out_features divisible by 16"):
        FusedQuantLinear(nn.Linear(64, 24), QuantSpec(4, True, "group", 32))
    with pytest.raises(ValueError, match="int8 activations go with int8 weights"):
        FusedQuantLinear(nn.Linear(64, 32), QuantSpec(4, True, "group", 32), int8_activations=True)
    with pytest.raises(ValueError, match="int8_activations needs fused=True"):
        quantize_model(nn.Sequential(nn.Linear(64, 32)), int8_activations=True)
    quantized = quantize_model(nn.Sequential(nn.Linear(64, 32)), bits=4, group_size=32, fused=True)
    assert isinstance(quantized[0], FusedQuantLinear)


def test_quantize_model_names_bad_arguments():
    model = nn.Sequential(nn.Linear(48, 8))
    with pytest.raises(ValueError, match="not modules of this model"):
        quantize_model(model, skip=["projector"])
    with pytest.raises(ValueError, match="cannot quantize 0: group_size 32 does not divide"):
        quantize_model(model, bits=4, group_size=32)


def test_sizes_on_disk_meet_the_course_targets():
    """The tiny MobileLLaMA's weights: int8 >= 3.5x and int4 (groups of 32) >= 6x smaller; embedding and norms stay
    fp32."""
    torch.manual_seed(0)
    llm = MobileLlama(preset("tiny", vocab_size=shapes_tokenizer().vocab_size))
    fp32 = size_on_disk(llm)
    assert fp32 >= 4 * sum(p.numel() for p in llm.parameters())
    assert fp32 / size_on_disk(quantize_model(llm, bits=8)) >= 3.5
    assert fp32 / size_on_disk(quantize_model(llm, bits=4, group_size=32)) >= 6.0


# ---------------------------------------------------------------- a trained model's answers, quantized

VIT = ViTConfig(image_size=48, patch_size=12, dim=32, depth=2, heads=2)


@pytest.fixture(scope="module")
def trained():
    """A small MobileVLM (random frozen ViT) trained for a few seconds, and held-out images to ask about."""
    def fake_pretrained_vit(*args, **kwargs) -> ViT:
        torch.manual_seed(123)
        return ViT(VIT).eval().requires_grad_(False)

    llm = preset("tiny", vocab_size=shapes_tokenizer().vocab_size, hidden_size=64, intermediate_size=128,
                 num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    config = TrainConfig(model=VLMConfig(vit=VIT, llm=llm), align=StageConfig(steps=0),
                         instruct=StageConfig(steps=60, batch_size=16, lr=3e-3, warmup=5), n_train=64, n_val=8,
                         eval_every=1000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "pretrained_vit", fake_pretrained_vit)
        encoder = train_module.build_model(config)
        data = {"train": generate_dataset(64, seed=5), "validation": generate_dataset(8, seed=6)}
        data = {name: train_module.split_from_dataset(encoder, ds) for name, ds in data.items()}
        model, _ = train_module.train(config, progress=False, data=data)
    return model, generate_dataset(32, seed=9)


@pytest.mark.parametrize("bits, group_size, at_least", [(8, None, 0.9), (4, 32, 0.75)])
def test_quantized_greedy_answers_agree_with_fp32(trained, bits, group_size, at_least, record_property):
    model, images = trained

    def answers(m):
        return [r["predicted"] for r in train_module.predict(m, train_module.split_from_dataset(m, images))]

    rate = agreement(answers(model), answers(quantize_model(model, bits, group_size)))
    record_property(f"int{bits}_agreement", rate)
    print(f"int{bits}: {rate:.1%} of greedy answers identical to fp32")
    assert at_least <= rate <= 1.0


def test_agreement_needs_matching_lists():
    assert agreement(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.75
    with pytest.raises(ValueError, match="same length"):
        agreement(["a"], ["a", "b"])
