"""The tiny MobileLLaMA: configs, RMSNorm, RoPE, SwiGLU, grouped-query attention, KV cache (lesson 06)."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from mobilevlm_mini.language import (
    GroupedQueryAttention,
    KVCache,
    MobileLlama,
    MobileLlamaConfig,
    RMSNorm,
    StaticKVCache,
    SwiGLU,
    apply_rope,
    attention_mask_4d,
    causal_lm_loss,
    count_parameters,
    grouped_sdpa,
    kv_cache_bytes,
    preset,
    repeat_kv,
    rope_cos_sin,
)

SMALL = preset("tiny", vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)


def small_model(seed: int = 0, **overrides) -> MobileLlama:
    torch.manual_seed(seed)
    return MobileLlama(preset("tiny", **{**SMALL.__dict__, **overrides})).eval()


def test_mobilellama_1_4b_has_about_1_36b_parameters():
    n = count_parameters(preset("mobilellama-1.4b"))
    assert n == 1_364_297_728
    assert abs(n - 1.36e9) / 1.36e9 < 0.01


def test_mobilellama_2_7b_has_about_2_7b_parameters():
    assert abs(count_parameters(preset("mobilellama-2.7b")) - 2.7e9) / 2.7e9 < 0.01


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_count_matches_the_built_model(tie):
    model = small_model(tie_word_embeddings=tie)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(model.config)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tie


def test_config_errors_name_the_values():
    with pytest.raises(ValueError, match="num_key_value_heads 3 must divide num_attention_heads 4"):
        MobileLlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="hidden_size 30 is not divisible by num_attention_heads 4"):
        MobileLlamaConfig(hidden_size=30, num_attention_heads=4, num_key_value_heads=4)
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


def test_parameter_names_match_hugging_face_llama():
    names = set(MobileLlama(preset("tiny", num_hidden_layers=1)).state_dict())
    assert names == {
        "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
        *(f"model.layers.0.{n}.weight" for n in (
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")),
    }


def test_rmsnorm_formula_and_difference_from_layernorm():
    torch.manual_seed(0)
    norm = RMSNorm(8, eps=1e-6)
    norm.weight.data = torch.linspace(0.5, 2.0, 8)
    x = torch.randn(3, 8) + 2.0
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm(5 * x), norm(x), rtol=1e-5, atol=1e-5)  # scale does not matter
    assert not torch.allclose(RMSNorm(8)(x), F.layer_norm(x, (8,)), atol=1e-2)  # no mean subtraction
    centred = x - x.mean(-1, keepdim=True)
    torch.testing.assert_close(RMSNorm(8, eps=1e-5)(centred), F.layer_norm(centred, (8,)), rtol=1e-4, atol=1e-4)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(2, 16)

    def score(m: int, n: int) -> torch.Tensor:
        cos, sin = rope_cos_sin(torch.tensor([m, n]), 16)
        return apply_rope(q, cos[0], sin[0]) @ apply_rope(k, cos[1], sin[1])

    for shift in (1, 7, 100):
        torch.testing.assert_close(score(5, 2), score(5 + shift, 2 + shift), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(score(5, 2), score(5, 3))  # but it does depend on the distance


def test_rope_rotates_pairs_like_complex_multiplication():
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    pos = torch.arange(5)
    cos, sin = rope_cos_sin(pos, 8, theta=10000.0)
    z = torch.complex(x[:, :4], x[:, 4:])  # pair i = channels (i, i + d/2)
    angles = pos[:, None] * 10000.0 ** (-torch.arange(0, 8, 2) / 8)
    rotated = z * torch.polar(torch.ones_like(angles), angles)
    torch.testing.assert_close(apply_rope(x, cos, sin), torch.cat([rotated.real, rotated.imag], -1))
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))  # rotations keep lengths
    torch.testing.assert_close(apply_rope(x, cos, sin)[0], x[0])  # position 0 is not turned


def test_swiglu_is_gated():
    torch.manual_seed(0)
    mlp = SwiGLU(8, 16)
    x = torch.randn(4, 8)
    torch.testing.assert_close(mlp(x), mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x)))
    mlp.gate_proj.weight.data.zero_()  # silu(0) = 0 closes every gate
    assert torch.all(mlp(x) == 0)


def identity_rope(n: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(1, 1, n, head_dim), torch.zeros(1, 1, n, head_dim)


def test_gqa_with_as_many_kv_heads_as_heads_is_multi_head_attention():
    torch.manual_seed(0)
    config = preset("tiny", hidden_size=32, num_attention_heads=4, num_key_value_heads=4)
    gqa = GroupedQueryAttention(config, 0)
    mha = torch.nn.MultiheadAttention(32, 4, bias=False, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([gqa.q_proj.weight, gqa.k_proj.weight, gqa.v_proj.weight]))
        mha.out_proj.weight.copy_(gqa.o_proj.weight)
    x = torch.randn(2, 7, 32)
    expected, _ = mha(x, x, x, attn_mask=~attention_mask_4d(None, 7, 7)[0, 0], need_weights=False)
    out, _ = gqa(x, *identity_rope(7, 8), attention_mask_4d(None, 7, 7))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_gqa_equals_multi_head_attention_with_shared_key_value_weights():
    torch.manual_seed(0)
    grouped = GroupedQueryAttention(preset("tiny", hidden_size=32, num_attention_heads=4, num_key_value_heads=2), 0)
    full = GroupedQueryAttention(preset("tiny", hidden_size=32, num_attention_heads=4, num_key_value_heads=4), 0)
    with torch.no_grad():
        full.q_proj.weight.copy_(grouped.q_proj.weight)
        full.o_proj.weight.copy_(grouped.o_proj.weight)
        for name in ("k_proj", "v_proj"):  # kv head j serves query heads 2j and 2j+1
            w = getattr(grouped, name).weight.reshape(2, 8, 32)
            getattr(full, name).weight.copy_(w.repeat_interleave(2, dim=0).reshape(32, 32))
    x = torch.randn(2, 6, 32)
    cos, sin = rope_cos_sin(torch.arange(6)[None], 8)
    mask = attention_mask_4d(None, 6, 6)
    torch.testing.assert_close(grouped(x, cos[:, None], sin[:, None], mask)[0],
                               full(x, cos[:, None], sin[:, None], mask)[0])


def test_kv_cache_gives_the_same_logits_as_recomputing():
    model = small_model()
    ids = torch.randint(0, 40, (2, 12))
    full = model(ids)
    cache = KVCache()
    steps = [model(ids[:, :5], cache=cache)]  # prefill 5 tokens, then one at a time
    steps += [model(ids[:, t : t + 1], cache=cache) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)
    assert cache.seq_len == 12
    assert cache.nbytes() == kv_cache_bytes(model.config, 12, batch_size=2, bytes_per_value=4)


def test_static_kv_cache_gives_the_same_logits_as_the_growing_one():
    model = small_model()
    ids, mask = torch.randint(1, 40, (2, 12)), torch.tensor([[0] * 3 + [1] * 9, [1] * 12])
    caches = {"growing": KVCache(), "static": StaticKVCache(model.config, batch_size=2, max_len=16)}
    logits = {}
    with torch.no_grad():
        for name, cache in caches.items():
            steps = [model(ids[:, :5], attention_mask=mask[:, :5], cache=cache)]
            steps += [model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache) for t in range(5, 12)]
            logits[name] = torch.cat(steps, dim=1)
    torch.testing.assert_close(logits["static"], logits["growing"], rtol=0, atol=0)
    static = caches["static"]
    assert static.seq_len == 12 and static.keys[0].shape == (2, 2, 12, 8)
    assert all(torch.equal(a, b) for a, b in zip(static.keys + static.values, caches["growing"].keys
                                                 + caches["growing"].values, strict=True))
    assert static.nbytes() == kv_cache_bytes(model.config, 16, batch_size=2, bytes_per_value=4)  # all 16 allocated
    with pytest.raises(ValueError, match="the cache holds 16 positions; 17 do not fit"), torch.no_grad():
        model(torch.randint(1, 40, (2, 5)), cache=static)


def test_grouped_sdpa_equals_repeating_the_key_value_heads():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    mask = attention_mask_4d(torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7]), 5, 7)
    expected = F.scaled_dot_product_attention(q, repeat_kv(k, 2), repeat_kv(v, 2), attn_mask=mask)
    with torch.no_grad():  # the kernel shares the heads itself (enable_gqa, torch >= 2.5)
        torch.testing.assert_close(grouped_sdpa(q, k, v, mask), expected, rtol=0, atol=0)
    torch.testing.assert_close(grouped_sdpa(q, k, v, mask), expected, rtol=0, atol=0)  # training: repeat_kv


def test_training_forward_and_gradients_use_repeat_kv():
    model = small_model()
    ids, mask = torch.randint(1, 40, (2, 9)), torch.tensor([[0] * 2 + [1] * 7, [1] * 9])
    logits = model(ids, attention_mask=mask)
    grads = torch.autograd.grad(logits.square().mean(), list(model.parameters()))
    with torch.no_grad():  # evaluation (enable_gqa where torch has it) gives the very same logits
        torch.testing.assert_close(model(ids, attention_mask=mask), logits, rtol=0, atol=0)
    for layer in model.model.layers:  # the same gradients as attention on explicitly repeated heads
        layer.self_attn.forward = partial(repeat_kv_attention, layer.self_attn)
    by_hand = torch.autograd.grad(model(ids, attention_mask=mask).square().mean(), list(model.parameters()))
    for a, b in zip(grads, by_hand, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def repeat_kv_attention(attn, x, cos, sin, mask, cache=None, return_weights=False, context=None):
    """GroupedQueryAttention.forward as it was before grouped_sdpa (no cache, no keep): repeat_kv, then the kernel."""
    q = attn.q_proj(x).unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
    k = attn.k_proj(x).unflatten(-1, (attn.num_kv_heads, -1)).transpose(1, 2)
    v = attn.v_proj(x).unflatten(-1, (attn.num_kv_heads, -1)).transpose(1, 2)
    q, k, n_rep = apply_rope(q, cos, sin), apply_rope(k, cos, sin), attn.num_heads // attn.num_kv_heads
    out = F.scaled_dot_product_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), attn_mask=mask)
    return attn.o_proj(out.transpose(1, 2).flatten(2)), None


def test_future_tokens_never_change_earlier_logits():
    model = small_model()
    ids = torch.randint(0, 40, (1, 10))
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 40
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], rtol=0, atol=0)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_inputs_embeds_equal_input_ids():
    model = small_model()
    ids = torch.randint(0, 40, (2, 8))
    torch.testing.assert_close(model(inputs_embeds=model.embed(ids)), model(ids))


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_does_not_change_real_tokens(side):
    model = small_model()
    short, long = torch.randint(1, 40, (5,)), torch.randint(1, 40, (8,))
    pad = torch.zeros(3, dtype=torch.long)
    row = torch.cat([pad, short]) if side == "left" else torch.cat([short, pad])
    mask = (torch.arange(8) >= 3) if side == "left" else (torch.arange(8) < 5)
    logits = model(torch.stack([row, long]), attention_mask=torch.stack([mask, torch.ones(8, dtype=torch.bool)]).long())
    assert torch.isfinite(logits).all()
    real = logits[0, 3:] if side == "left" else logits[0, :5]
    torch.testing.assert_close(real, model(short[None])[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[1], model(long[None])[0], rtol=1e-5, atol=1e-5)


def test_keep_computes_only_the_asked_positions_with_the_same_logits():
    model = small_model()
    ids, mask = torch.randint(1, 40, (2, 7)), torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    full = model(ids, attention_mask=mask)  # (2, 7, vocab)
    keep = torch.tensor([[2, 6], [0, 4]])
    kept, weights = model(ids, attention_mask=mask, keep=keep, return_weights=True)
    assert kept.shape == (2, 2, 40) and weights[-1].shape == (2, 4, 2, 7) and weights[0].shape == (2, 4, 7, 7)
    torch.testing.assert_close(kept, full.gather(1, keep[..., None].expand(-1, -1, 40)), rtol=1e-5, atol=1e-5)


def test_attention_weights_path_matches_fast_path():
    model = small_model()
    ids = torch.randint(0, 40, (2, 6))
    logits, weights = model(ids, return_weights=True)
    torch.testing.assert_close(logits, model(ids), rtol=1e-5, atol=1e-5)
    assert len(weights) == 2 and weights[0].shape == (2, 4, 6, 6)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 4, 6))
    assert torch.all(weights[0].triu(diagonal=1) == 0)


def test_causal_lm_loss_shifts_and_ignores():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(causal_lm_loss(logits, labels), expected)
    ignored = labels.clone()
    ignored[:, 3:] = -100
    torch.testing.assert_close(causal_lm_loss(logits, ignored),
                               F.cross_entropy(logits[:, :2].reshape(-1, 7), labels[:, 1:3].reshape(-1)))


def test_bad_inputs_raise_clear_errors():
    model = small_model()
    ids = torch.randint(0, 40, (1, 4))
    with pytest.raises(ValueError, match="exactly one of input_ids"):
        model()
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 40\), got ids from 0 to 45"):
        model(torch.tensor([[0, 45]]))
    with pytest.raises(ValueError, match="longer than max_position_embeddings 64"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\), expected .* \(1, 4\)"):
        model(ids, attention_mask=torch.ones(1, 3))


def test_loss_curve_plot_has_perplexity_axis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mobilevlm_mini.viz import show_loss_curves

    fig, ax = plt.subplots()
    show_loss_curves({"train": ([0, 1, 2], [4.0, 2.0, 1.0])}, ax)
    assert ax.get_ylabel().startswith("cross-entropy") and ax.get_title()
    with pytest.raises(ValueError, match="curve 'val' has 2 steps but 1 losses"):
        show_loss_curves({"val": ([0, 1], [1.0])}, ax)
    plt.close(fig)
