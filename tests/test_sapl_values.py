"""SAPL by value: one prompted layer against attention written out in this file.

For a frozen block of the tiny CLIP and distinct prompts P_Q, P_K, P_V, the output of
``SAPLPrompts.hook`` + ``run_block`` must equal what docs/method.md states:

    X_Q = LN(Rep(X, P_Q)),  X_K = LN(Rep(X, P_K)),  X_V = LN(Rep(X, P_V))
    A   = per head softmax(Q K^T / sqrt(d) + mask) V, heads merged, output projection
    Y   = R + ls_1(A),  out = Y + ls_2(mlp(LN_2(Y)))

with R = Rep(X, P_Q) (RESIDUAL query) or X (RESIDUAL input). Text prompts sit right after
SOS under the causal mask, vision prompts are the last tokens, unmasked. Layer 0 takes
its prompts through the input stage first (text: + positional embedding; vision:
``ln_pre``), and its input already carries the entered P_Q.

The reference uses only the block's weights (in_proj, out_proj, ln_1, ln_2, ls_*) and
CLIP's MLP module; layer norm, projections, mask and softmax are written here. Only
values are compared, so any attention kernel that computes the same numbers passes.
"""
import math

import pytest
import torch

from models.clip_loader import load_clip
from models.deep_prompts import text_slots, vision_slots
from models.prompted_attention import (
    SlotAttentionInputs,
    drives_fused,
    fused_attention,
    is_causal_mask,
    run_block,
    shared_projection,
)
from models.sapl import SAPLPrompts
from models.text_encoder import TextEncoder
from models.vision_encoder import VisionEncoder

N_TOKENS, BATCH, DEPTH, TEXT_LENGTH = 3, 2, 3, 9  # text cut to 9 tokens, as short prompts are
ROLES = ("query", "key", "value")


@pytest.fixture(scope="module")
def clip_model():
    """The tiny CLIP with random layer-norm gains and biases: freshly initialised ones
    (1 and 0) make ln_pre invisible under ln_1, so a skipped input stage would pass."""
    model = load_clip("tiny-vit", pretrained=False).eval()
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.5 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.5 * torch.randn(module.bias.shape, generator=generator))
    return model


# --------------------------------------------------------------------------- the reference


def layer_norm(x, ln):
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + ln.eps) * ln.weight + ln.bias


def rep(x, begin, prompt):
    """Rep(X, P): ``x`` [N, L, D] with tokens ``begin .. begin + n`` replaced by ``prompt``."""
    out = x.clone()
    out[:, begin:begin + prompt.shape[0]] = prompt
    return out


def causal_mask(length):
    """Token i may read tokens 0 .. i."""
    blocked = torch.ones(length, length, dtype=torch.bool).triu(1)
    return torch.zeros(length, length).masked_fill(blocked, float("-inf"))


def softmax(scores):
    shifted = scores - scores.amax(-1, keepdim=True)  # the diagonal is never masked: finite
    weights = shifted.exp()
    return weights / weights.sum(-1, keepdim=True)


def attention(block, query, key, value, mask):
    attn = block.attn
    n, length, width = query.shape
    heads = attn.num_heads
    head_width = width // heads
    weights, biases = attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3)

    def heads_of(x, role):  # [N, L, D] -> [N, heads, L, head_width]
        projected = x @ weights[role].t() + biases[role]
        return projected.reshape(n, x.shape[1], heads, head_width).transpose(1, 2)

    q, k, v = heads_of(query, 0), heads_of(key, 1), heads_of(value, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_width)
    if mask is not None:
        scores = scores + mask
    mixed = (softmax(scores) @ v).transpose(1, 2).reshape(n, length, width)
    return mixed @ attn.out_proj.weight.t() + attn.out_proj.bias


def reference_layer(block, x, begin, p_q, p_k, p_v, residual, mask):
    """One SAPL layer on ``x`` with prompts (already entered at layer 0) at ``begin``."""
    stream_q, stream_k, stream_v = rep(x, begin, p_q), rep(x, begin, p_k), rep(x, begin, p_v)
    attended = attention(block, layer_norm(stream_q, block.ln_1), layer_norm(stream_k, block.ln_1),
                         layer_norm(stream_v, block.ln_1), mask)
    out = (stream_q if residual == "query" else x) + block.ls_1(attended)
    return out + block.ls_2(block.mlp(layer_norm(out, block.ln_2)))


# --------------------------------------------------------------------------- the two sides


def text_side(clip_model):
    """What one text layer needs: its transformer, sequence length, where the prompts
    begin, our slots and entry, the reference entry, run_block's and the reference mask."""
    positions = clip_model.positional_embedding[1:1 + N_TOKENS]
    return dict(
        transformer=clip_model.transformer, length=TEXT_LENGTH, begin=1,
        slots=text_slots(N_TOKENS),
        entry=TextEncoder(clip_model).prompt_entry(1, N_TOKENS),
        reference_entry=lambda prompt: prompt + positions,
        mask=clip_model.attn_mask[:TEXT_LENGTH, :TEXT_LENGTH],  # what TextEncoder passes
        reference_mask=causal_mask(TEXT_LENGTH),
    )


def vision_side(clip_model):
    visual = clip_model.visual
    length = visual.positional_embedding.shape[0] + N_TOKENS  # CLS, patches, prompts
    return dict(
        transformer=visual.transformer, length=length, begin=length - N_TOKENS,
        slots=vision_slots(N_TOKENS),
        entry=VisionEncoder(clip_model).prompt_entry(),
        reference_entry=lambda prompt: layer_norm(prompt, visual.ln_pre),
        mask=None, reference_mask=None,
    )


SIDES = {"text": text_side, "vision": vision_side}


def distinct_prompts(width, seed):
    """SAPL prompts whose query, key and value differ in every layer (unit scale)."""
    prompts = SAPLPrompts(DEPTH, N_TOKENS, width, qkv_init="independent")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for role in ROLES:
            for param in prompts.layer_prompts(role):
                param.copy_(torch.randn(param.shape, generator=generator))
    return prompts


@pytest.mark.parametrize("layer", [0, DEPTH - 1])
@pytest.mark.parametrize("residual", ["query", "input"])
@pytest.mark.parametrize("side_name", ["text", "vision"])
def test_one_prompted_layer_equals_attention_written_out(clip_model, side_name, residual, layer):
    side = SIDES[side_name](clip_model)
    transformer = side["transformer"]
    block = transformer.resblocks[layer]
    width, begin = block.ln_1.weight.shape[0], side["begin"]
    prompts = distinct_prompts(width, seed=layer)
    generator = torch.Generator().manual_seed(100 + layer)
    x = torch.randn(BATCH, side["length"], width, generator=generator)

    with torch.no_grad():
        p_q, p_k, p_v = (prompts.layer_prompts(role)[layer] for role in ROLES)
        if layer == 0:  # the encoder input already holds P_Q after the input stage
            p_q, p_k, p_v = (side["reference_entry"](p) for p in (p_q, p_k, p_v))
            x = rep(x, begin, p_q)
        hook = prompts.hook(side["slots"], side["entry"], residual)
        got = run_block(block, hook(layer, x), attn_mask=side["mask"],
                        batch_first=getattr(transformer, "batch_first", True))

        def reference(p_q, p_k, p_v, residual=residual):
            return reference_layer(block, x, begin, p_q, p_k, p_v, residual, side["reference_mask"])

        expected = reference(p_q, p_k, p_v)
        # What this comparison can tell apart: the roles swapped, or (deeper layers) the
        # other residual stream, move the output far beyond the tolerance.
        wrong = {"key and value swapped": reference(p_q, p_v, p_k),
                 "query and key swapped": reference(p_k, p_q, p_v)}
        if layer > 0:
            wrong["other residual"] = reference(p_q, p_k, p_v, {"query": "input",
                                                                "input": "query"}[residual])

    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * scale)
    for label, output in wrong.items():
        assert (output - expected).abs().max() > 1e-2 * scale, label


# --------------------------------------------------------------------------- one projection


def layer_output_and_grads(block, hook, layer, x, side, batch_first):
    """One prompted layer's output and the gradients of a fixed random functional of it
    with respect to the input and every prompt of the layer."""
    mask = side["mask"]
    out = run_block(block, hook(layer, x), attn_mask=mask, batch_first=batch_first,
                    causal=is_causal_mask(mask))
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(11))
    used = ROLES[1:] if layer == 0 else ROLES  # layer 0's P_Q is already in x
    leaves = [x] + [getattr(hook, role)[layer] for role in used]
    return out.detach(), torch.autograd.grad((out * weights).sum(), leaves)


@pytest.mark.parametrize("layer", [0, DEPTH - 1])
@pytest.mark.parametrize("residual", ["query", "input"])
@pytest.mark.parametrize("side_name", ["text", "vision"])
def test_shared_projection_equals_three_streams(clip_model, side_name, residual, layer, monkeypatch):
    """The shared sequence projected once plus the slot rows per stream gives the values
    and prompt gradients of three full-length streams (and of the blocks' own attention)."""
    side = SIDES[side_name](clip_model)
    transformer = side["transformer"]
    block = transformer.resblocks[layer]
    assert drives_fused(block)
    batch_first = getattr(transformer, "batch_first", True)
    width = block.ln_1.weight.shape[0]
    hook = distinct_prompts(width, seed=20 + layer).hook(side["slots"], side["entry"], residual)
    generator = torch.Generator().manual_seed(200 + layer)
    x = torch.randn(BATCH, side["length"], width, generator=generator).requires_grad_(True)
    assert isinstance(hook(layer, x), SlotAttentionInputs)

    with shared_projection(False):
        expected, expected_grads = layer_output_and_grads(block, hook, layer, x, side, batch_first)
    with shared_projection(False), fused_attention(False):
        own, own_grads = layer_output_and_grads(block, hook, layer, x, side, batch_first)
    with monkeypatch.context() as patch:  # the one-projection path really runs
        patch.setattr(SlotAttentionInputs, "streams", lambda self: pytest.fail("three streams built"))
        got, got_grads = layer_output_and_grads(block, hook, layer, x, side, batch_first)

    def close(actual, reference):
        torch.testing.assert_close(actual, reference, rtol=1e-5,
                                   atol=1e-5 * max(reference.abs().max().item(), 1e-6))

    for output, grads in ((got, got_grads), (own, own_grads)):
        close(output, expected)
        for grad, expected_grad in zip(grads, expected_grads):
            assert expected_grad.abs().max() > 0  # every prompt of the layer is used
            close(grad, expected_grad)
