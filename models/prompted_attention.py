"""The one prompted-attention block: a frozen open_clip residual block run on its own weights.

Every encoder here (``TextEncoder``, ``VisionEncoder``) runs the frozen blocks one at a
time through ``run_block``. The input of a block is either

* a tensor ``x`` [N, L, D]: ordinary and deep prompting, or
* ``AttentionInputs``: separate query, key and value streams plus the residual stream,
  which is what RPP's self-attention prompts (SAPL) need: the frozen attention takes its
  query, key and value from sequences whose prompt slots hold different prompts, or
* ``SlotAttentionInputs``: the same thing said compactly, one sequence plus the few
  tokens by which each stream differs from it at the prompt slots. Layer norm and the
  q/k/v projections work per token, so the fused path projects the shared sequence once
  (one packed ``in_proj``) and overwrites only the slot rows of q, k and v: the values of
  the three-stream path at about a third of its projection cost.
  ``set_shared_projection(False)`` expands it into full ``AttentionInputs`` instead (the
  reference of the tests and the benchmark); so does every path that is not fused.

The block's own modules and parameters do the work (``ln_1``, the ``attn`` projections,
``ls_1``, ``ln_2``, ``mlp``, ``ls_2``); nothing of CLIP is copied. The attention itself
is ``F.scaled_dot_product_attention`` on the block's ``in_proj``/``out_proj`` weights,
because ``nn.MultiheadAttention`` (what ``block.attention`` calls) expands CLIP's causal
mask to a full [N * heads, L, L] tensor while autograd records, which keeps the fused
kernels out: with ``causal=True`` the text tower runs the fused causal kernel, 1.5x
faster forward + backward on a CPU at ViT-B/16's text width. A block of another type,
or an ``nn.MultiheadAttention`` with extras (separate q/k/v weights, bias_k,
add_zero_attn), runs as before: its own forward, or ``block.attention`` for separate
streams. ``set_fused_attention(False)`` (or ``fused_attention(False)``) switches back to
those paths everywhere: the reference of the tests and of the benchmark's stand-in for
the official code.

Activation checkpointing (``run_blocks(..., checkpointing=True)``) keeps only each
block's input during the forward pass and recomputes the block in the backward pass.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn
from torch.utils.checkpoint import checkpoint

from engine.user_errors import UserError
from models.deep_prompts import PromptSlots


class UnsupportedBlockError(UserError):
    """Separate query/key/value inputs were asked of a block type we cannot drive."""


@dataclass
class AttentionInputs:
    """One block's inputs when query, key and value differ. All [N, L, D], batch first.

    ``residual`` is the stream the attention output is added to (RPP: the query stream,
    unless configured otherwise; see docs/method.md).
    """

    residual: torch.Tensor
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor


@dataclass
class SlotAttentionInputs:
    """Query, key and value streams that equal ``x`` [N, L, D] except at ``slots``.

    ``query``/``key``/``value``: the stream's tokens at the slots before layer norm
    ([n, D] shared by the batch, or [N, n, D]); None means ``x``'s own. ``x`` is also the
    residual stream.
    """

    x: torch.Tensor
    slots: PromptSlots
    query: Optional[torch.Tensor] = None
    key: Optional[torch.Tensor] = None
    value: Optional[torch.Tensor] = None

    def streams(self) -> AttentionInputs:
        """The same inputs as three full-length streams (the reference path)."""
        def stream(tokens):
            return self.x if tokens is None else self.slots.replace(self.x, tokens)

        return AttentionInputs(residual=self.x, query=stream(self.query),
                               key=stream(self.key), value=stream(self.value))


BlockInput = Union[torch.Tensor, AttentionInputs, SlotAttentionInputs]

_FUSED = {"enabled": True}
_SHARED_PROJECTION = {"enabled": True}


def _set(switch: dict, enabled: bool) -> bool:
    previous = switch["enabled"]
    switch["enabled"] = bool(enabled)
    return previous


@contextmanager
def _switched(switch: dict, enabled: bool):
    previous = _set(switch, enabled)
    try:
        yield
    finally:
        _set(switch, previous)


def set_fused_attention(enabled: bool) -> bool:
    """Use the fused path (True, the default) or the blocks' own attention; returns the
    previous setting."""
    return _set(_FUSED, enabled)


def fused_attention(enabled: bool):
    """``with fused_attention(False):`` runs the blocks' own attention inside."""
    return _switched(_FUSED, enabled)


def set_shared_projection(enabled: bool) -> bool:
    """Project ``SlotAttentionInputs`` once plus the slot rows (True, the default) or as
    three full streams; returns the previous setting."""
    return _set(_SHARED_PROJECTION, enabled)


def shared_projection(enabled: bool):
    """``with shared_projection(False):`` runs the three-stream path inside."""
    return _switched(_SHARED_PROJECTION, enabled)


def is_causal_mask(mask: Optional[torch.Tensor]) -> bool:
    """True for an additive [L, L] mask that hides exactly the later tokens (CLIP's text mask)."""
    if mask is None or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    later = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    hidden = torch.isneginf(mask)
    return bool(torch.equal(hidden, later) and (mask[~later] == 0).all())


def drives_fused(block: nn.Module) -> bool:
    """True if ``block``'s attention can run as SDPA on its own packed projection weights."""
    if not (_FUSED["enabled"] and isinstance(block, ResidualAttentionBlock)):
        return False
    attn = getattr(block, "attn", None)
    return (isinstance(attn, nn.MultiheadAttention) and attn._qkv_same_embed_dim
            and attn.in_proj_weight is not None and attn.bias_k is None
            and attn.bias_v is None and not attn.add_zero_attn)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[N, L, D] -> [N, heads, L, D / heads]."""
    n, length, width = x.shape
    return x.view(n, length, num_heads, width // num_heads).transpose(1, 2)


def _projections(block: nn.Module):
    """``block.attn``'s (weight, bias) of the query, key and value projections."""
    attn = block.attn
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    return tuple(zip(weight.chunk(3), bias.chunk(3) if bias is not None else (None,) * 3))


def _projected(block: nn.Module, query: torch.Tensor, key: Optional[torch.Tensor],
               value: Optional[torch.Tensor]):
    """q, k, v [N, L, D] of layer-normed inputs; ``key``/``value`` None: self-attention
    on ``query``, one packed projection."""
    attn = block.attn
    if key is None:
        return F.linear(query, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return tuple(F.linear(x, w, b) for x, (w, b) in zip((query, key, value), _projections(block)))


def _slot_projected(block: nn.Module, x: SlotAttentionInputs):
    """q, k, v [N, L, D] of ``x``'s three streams: one packed projection of the shared
    sequence, then the slot rows of the streams that differ there projected on their own
    (per-token layer norm and projection: the same values as three full streams)."""
    attn = block.attn
    qkv = F.linear(block.ln_1(x.x), attn.in_proj_weight, attn.in_proj_bias)
    tokens = (x.query, x.key, x.value)
    given = [index for index, stream in enumerate(tokens) if stream is not None]
    if not given:
        return qkv.chunk(3, dim=-1)
    begin, end = x.slots.bounds(x.x.shape[1])
    width = x.x.shape[-1]
    first, last = given[0], given[-1]
    rows = []
    for index in range(first, last + 1):
        stream = tokens[index]
        if stream is None:  # between two that differ: the shared sequence's own tokens
            stream = x.slots.select(x.x)
        x.slots.check_prompt(stream, width)
        weight, bias = _projections(block)[index]
        rows.append(F.linear(block.ln_1(stream.to(x.x.dtype)), weight, bias))
    # One write in place on the fresh projection output (linear does not save it for
    # backward): no copy of the whole sequence per stream, one autograd copy in all.
    qkv[:, begin:end, first * width:(last + 1) * width] = torch.cat(torch.broadcast_tensors(*rows), dim=-1)
    return qkv.chunk(3, dim=-1)


def _fused_attention(block: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     attn_mask: Optional[torch.Tensor], causal: bool) -> torch.Tensor:
    """Multi-head attention [N, L, D] of projected q, k, v on ``block.attn``'s weights."""
    attn = block.attn
    heads = attn.num_heads
    mask = None
    if attn_mask is not None and not causal:
        mask = attn_mask.to(q.dtype)
    out = F.scaled_dot_product_attention(
        _heads(q, heads), _heads(k, heads), _heads(v, heads), attn_mask=mask,
        dropout_p=attn.dropout if attn.training else 0.0, is_causal=causal and attn_mask is not None,
    )
    out = out.transpose(1, 2).reshape(q.shape)
    return attn.out_proj(out)


def _seq_first(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1)


def _own_forward(block: nn.Module, x: BlockInput, attn_mask, batch_first) -> torch.Tensor:
    """The block's own forward (tensor input) or its own ``attention`` (separate streams)."""
    if isinstance(x, torch.Tensor):
        if batch_first:
            return block(x, attn_mask=attn_mask)
        return _seq_first(block(_seq_first(x), attn_mask=attn_mask))
    if not isinstance(block, ResidualAttentionBlock):
        raise UnsupportedBlockError(
            f"separate query/key/value prompts need open_clip ResidualAttentionBlock layers; "
            f"this backbone has {type(block).__name__}"
        )
    streams = (x.residual, x.query, x.key, x.value)
    if not batch_first:
        streams = tuple(_seq_first(s) for s in streams)
    residual, query, key, value = streams
    attended = block.attention(
        q_x=block.ln_1(query), k_x=block.ln_1(key), v_x=block.ln_1(value), attn_mask=attn_mask
    )
    out = residual + block.ls_1(attended)
    out = out + block.ls_2(block.mlp(block.ln_2(out)))
    return out if batch_first else _seq_first(out)


def run_block(block: nn.Module, x: BlockInput, attn_mask: Optional[torch.Tensor] = None,
              batch_first: bool = True, causal: bool = False) -> torch.Tensor:
    """Output [N, L, D] of a frozen residual block; hooks always see batch-first tensors.

    ``causal`` says that ``attn_mask`` is the causal mask (``is_causal_mask``), so the
    fused path may use the causal kernel instead of the mask tensor.
    """
    fused = drives_fused(block)
    if isinstance(x, SlotAttentionInputs) and not (fused and _SHARED_PROJECTION["enabled"]):
        x = x.streams()
    if not fused:
        return _own_forward(block, x, attn_mask, batch_first)
    if isinstance(x, torch.Tensor):
        residual = x
        q, k, v = _projected(block, block.ln_1(x), None, None)
    elif isinstance(x, SlotAttentionInputs):
        residual = x.x
        q, k, v = _slot_projected(block, x)
    else:
        residual = x.residual
        q, k, v = _projected(block, block.ln_1(x.query), block.ln_1(x.key), block.ln_1(x.value))
    attended = _fused_attention(block, q, k, v, attn_mask, causal)
    out = residual + block.ls_1(attended)
    return out + block.ls_2(block.mlp(block.ln_2(out)))


def run_blocks(blocks, x: torch.Tensor, attn_mask=None, batch_first=True, layer_hook=None,
               causal: bool = False, checkpointing: bool = False):
    """``x`` through every block; ``layer_hook(index, x)`` may return a tensor,
    ``AttentionInputs`` or ``SlotAttentionInputs`` for block ``index``. With
    ``checkpointing`` (and autograd recording) every block is recomputed in the backward
    pass instead of keeping its activations; the hook runs outside, once."""
    recompute = checkpointing and torch.is_grad_enabled()
    for index, block in enumerate(blocks):
        block_input = layer_hook(index, x) if layer_hook is not None else x
        if recompute:
            x = checkpoint(run_block, block, block_input, attn_mask, batch_first, causal,
                           use_reentrant=False)
        else:
            x = run_block(block, block_input, attn_mask=attn_mask, batch_first=batch_first,
                          causal=causal)
    return x
