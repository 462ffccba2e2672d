"""Attention by hand, masks, multi-head and cross-attention (lessons 02-03)."""

import pytest
import torch
import torch.nn.functional as F

from mobilevlm_mini.attention import Block, GatedCrossAttentionBlock, MultiHeadAttention, attention, causal_mask


def test_attention_matches_pytorch():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 5, 8).unbind(0)
    out, weights = attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))


def test_causal_attention_matches_pytorch_and_ignores_future():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 2, 6, 4).unbind(0)
    out, weights = attention(q, k, v, causal_mask(6))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert torch.all(weights.triu(diagonal=1) == 0)
    v2 = v.clone()
    v2[..., -1, :] += 100.0  # changing the last token must not change earlier outputs
    out2, _ = attention(q, k, v2, causal_mask(6))
    torch.testing.assert_close(out[..., :-1, :], out2[..., :-1, :])


def test_causal_mask_with_cache_offset():
    mask = causal_mask(2, 5)  # the last two positions of five
    assert mask.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    with pytest.raises(ValueError, match="at least as many keys as queries"):
        causal_mask(5, 2)


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_fast_path_equals_by_hand(causal):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, causal=causal)
    x = torch.randn(2, 7, 16)
    out, weights = mha(x, return_weights=True)
    torch.testing.assert_close(mha(x), out, rtol=1e-5, atol=1e-5)
    assert weights.shape == (2, 4, 7, 7)


def test_cross_attention_shapes():
    mha = MultiHeadAttention(16, 2, context_dim=24)
    out, weights = mha(torch.randn(3, 5, 16), context=torch.randn(3, 9, 24), return_weights=True)
    assert out.shape == (3, 5, 16) and weights.shape == (3, 2, 5, 9)


def test_block_preserves_shape():
    assert Block(16, 4)(torch.randn(2, 9, 16)).shape == (2, 9, 16)


def test_gated_cross_attention_starts_as_identity():
    block = GatedCrossAttentionBlock(16, 2, context_dim=8)
    text = torch.randn(2, 5, 16)
    assert torch.equal(block(text, torch.randn(2, 10, 8)), text)


def test_bad_head_count():
    with pytest.raises(ValueError, match="dim 10 is not divisible by num_heads 4"):
        MultiHeadAttention(10, 4)


def test_attention_rejects_mismatched_inputs():
    q, k, v = torch.randn(4, 8), torch.randn(5, 8), torch.randn(5, 3)
    with pytest.raises(ValueError, match="queries have width 8 but keys have width 6"):
        attention(q, torch.randn(5, 6), v)
    with pytest.raises(ValueError, match="got 5 keys but 6 values"):
        attention(q, k, torch.randn(6, 3))


def test_attention_weights_follow_similarity():
    keys = torch.eye(3) * 10.0  # three orthogonal keys
    out, weights = attention(keys[:1], keys, torch.arange(3.0)[:, None])
    assert weights.argmax().item() == 0 and weights[0, 0] > 0.99  # the query matches key 0
    torch.testing.assert_close(out, weights @ torch.arange(3.0)[:, None])


def test_causal_multihead_with_longer_context_uses_the_same_mask_on_both_paths():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, causal=True)
    x, context = torch.randn(1, 2, 8), torch.randn(1, 5, 8)  # 2 new tokens after 3 cached ones
    out, weights = mha(x, context=context, return_weights=True)
    torch.testing.assert_close(mha(x, context=context), out, rtol=1e-5, atol=1e-5)
    assert torch.all(weights[..., 0, 4] == 0) and torch.all(weights[..., 1, 4] > 0)


def test_head_count_does_not_change_parameter_count():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(MultiHeadAttention(16, 1)) == count(MultiHeadAttention(16, 8)) == 4 * 16 * 16 + 4 * 16


def test_gated_cross_attention_changes_once_the_gate_opens():
    torch.manual_seed(0)
    block = GatedCrossAttentionBlock(16, 2, context_dim=8)
    text, image = torch.randn(2, 5, 16), torch.randn(2, 10, 8)
    block(text, image).pow(2).sum().backward()
    assert block.attn_gate.grad.abs().item() > 0  # the gate can learn from step one...
    assert torch.all(block.cross.q.weight.grad == 0)  # ...while the closed gate blocks the layer's own gradient
    with torch.no_grad():
        block.attn_gate.fill_(0.5)
    out = block(text, image)
    assert not torch.allclose(out, text)
    assert not torch.allclose(out, block(text, torch.randn(2, 10, 8)))  # and now it depends on the image
