"""models/prompted_attention.py: the fused attention path equals the blocks' own forward.

The reference is open_clip's ``ResidualAttentionBlock`` run as it is (``block(x)`` or
``block.attention(q, k, v)``, i.e. ``nn.MultiheadAttention``), reached with
``fused_attention(False)``. Blocks are built at ViT-B/16's text width (512, 8 heads)
with random weights, so head sizes are the real ones.
"""
import pytest
import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from models.prompted_attention import (
    AttentionInputs,
    drives_fused,
    fused_attention,
    is_causal_mask,
    run_block,
    run_blocks,
)

WIDTH, HEADS, LENGTH, BATCH = 512, 8, 13, 3


def causal_mask(length):
    return torch.empty(length, length).fill_(float("-inf")).triu_(1)


def assert_fp32_close(got, expected):
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * max(expected.abs().max().item(), 1.0))


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    block = ResidualAttentionBlock(WIDTH, HEADS).eval()
    with torch.no_grad():  # non-zero biases, so a bias mix-up shows
        for name, param in block.named_parameters():
            if "bias" in name:
                param.normal_(std=0.1)
        block.attn.in_proj_weight.mul_(4)  # sharper attention weights: masks matter
    return block.requires_grad_(False)


def streams(seed=1, count=4):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(BATCH, LENGTH, WIDTH, generator=generator).requires_grad_(True)
            for _ in range(count)]


def output_and_grads(block, block_input, leaves, **kwargs):
    out = run_block(block, block_input, **kwargs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    grads = torch.autograd.grad((out * weights).sum(), leaves)
    return out.detach(), grads


def count_mha_calls(block):
    calls = []
    handle = block.attn.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("mask", ["causal", "none", "additive"])
def test_fused_block_equals_its_own_forward(block, mask):
    (x,) = streams(count=1)
    attn_mask = {"causal": causal_mask(LENGTH), "none": None,
                 "additive": torch.randn(LENGTH, LENGTH, generator=torch.Generator().manual_seed(3))}[mask]
    causal = mask == "causal"
    calls, handle = count_mha_calls(block)
    try:
        fused = output_and_grads(block, x, [x], attn_mask=attn_mask, causal=causal)
        assert not calls  # nn.MultiheadAttention was not run
        with fused_attention(False):
            own = output_and_grads(block, x, [x], attn_mask=attn_mask, causal=causal)
        assert calls
    finally:
        handle.remove()
    assert_fp32_close(fused[0], own[0])
    assert_fp32_close(fused[1][0], own[1][0])


@pytest.mark.parametrize("causal", [True, False])
def test_fused_separate_streams_equal_block_attention(block, causal):
    residual, query, key, value = streams(seed=2)
    inputs = AttentionInputs(residual=residual, query=query, key=key, value=value)
    attn_mask = causal_mask(LENGTH) if causal else None
    fused = output_and_grads(block, inputs, [residual, query, key, value], attn_mask=attn_mask, causal=causal)
    with fused_attention(False):
        own = output_and_grads(block, inputs, [residual, query, key, value], attn_mask=attn_mask,
                               causal=causal)
    assert_fp32_close(fused[0], own[0])
    for got, expected in zip(fused[1], own[1], strict=True):
        assert_fp32_close(got, expected)
    assert all(g.abs().sum() > 0 for g in fused[1])  # key and value streams reach the output


def test_separate_streams_with_equal_inputs_equal_the_tensor_path(block):
    (x,) = streams(seed=4, count=1)
    same = AttentionInputs(residual=x, query=x, key=x, value=x)
    mask = causal_mask(LENGTH)
    with torch.no_grad():
        assert_fp32_close(run_block(block, same, attn_mask=mask, causal=True),
                          run_block(block, x, attn_mask=mask, causal=True))


class OtherBlock(nn.Module):
    """A residual block of another type (e.g. open_clip's CustomResidualAttentionBlock)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(32, 32)

    def forward(self, x, attn_mask=None):
        return x + self.linear(x)


def test_blocks_it_cannot_drive_run_their_own_forward(block):
    assert drives_fused(block)
    with fused_attention(False):
        assert not drives_fused(block)
    assert drives_fused(block)
    with_bias_kv = ResidualAttentionBlock(32, 4)
    with_bias_kv.attn = nn.MultiheadAttention(32, 4, add_bias_kv=True, batch_first=True)
    assert not drives_fused(with_bias_kv)
    other = OtherBlock()
    assert not drives_fused(other)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        assert torch.equal(run_blocks([other], x), other(x))


def test_causal_mask_detection():
    assert is_causal_mask(causal_mask(7))
    assert not is_causal_mask(None)
    assert not is_causal_mask(torch.zeros(7, 7))
    assert not is_causal_mask(causal_mask(7).T)
    shifted = causal_mask(7)
    shifted[3, 0] = -1.0
    assert not is_causal_mask(shifted)
