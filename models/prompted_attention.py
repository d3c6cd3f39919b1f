"""The one prompted-attention block: a frozen open_clip residual block run on its own weights.

Every encoder here (``TextEncoder``, ``VisionEncoder``) runs the frozen blocks one at a
time through ``run_block``. The input of a block is either

* a tensor ``x`` [N, L, D]: ordinary and deep prompting, or
* ``AttentionInputs``: separate query, key and value streams plus the residual stream,
  which is what RPP's self-attention prompts (SAPL) need: the frozen attention takes its
  query, key and value from sequences whose prompt slots hold different prompts.

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


BlockInput = Union[torch.Tensor, AttentionInputs]

_FUSED = {"enabled": True}


def set_fused_attention(enabled: bool) -> bool:
    """Use the fused path (True, the default) or the blocks' own attention; returns the
    previous setting."""
    previous = _FUSED["enabled"]
    _FUSED["enabled"] = bool(enabled)
    return previous


@contextmanager
def fused_attention(enabled: bool):
    """``with fused_attention(False):`` runs the blocks' own attention inside."""
    previous = set_fused_attention(enabled)
    try:
        yield
    finally:
        set_fused_attention(previous)


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


def _fused_attention(block: nn.Module, query: torch.Tensor, key: Optional[torch.Tensor],
                     value: Optional[torch.Tensor], attn_mask: Optional[torch.Tensor],
                     causal: bool) -> torch.Tensor:
    """Multi-head attention [N, L, D] of layer-normed inputs, on ``block.attn``'s weights.

    ``key``/``value`` None: self-attention on ``query``, one packed projection.
    """
    attn = block.attn
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    if key is None:
        q, k, v = F.linear(query, weight, bias).chunk(3, dim=-1)
    else:
        weights = weight.chunk(3)
        biases = bias.chunk(3) if bias is not None else (None, None, None)
        q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
    heads = attn.num_heads
    mask = None
    if attn_mask is not None and not causal:
        mask = attn_mask.to(q.dtype)
    out = F.scaled_dot_product_attention(
        _heads(q, heads), _heads(k, heads), _heads(v, heads), attn_mask=mask,
        dropout_p=attn.dropout if attn.training else 0.0, is_causal=causal and attn_mask is not None,
    )
    out = out.transpose(1, 2).reshape(query.shape)
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
    if not drives_fused(block):
        return _own_forward(block, x, attn_mask, batch_first)
    if isinstance(x, torch.Tensor):
        residual = x
        attended = _fused_attention(block, block.ln_1(x), None, None, attn_mask, causal)
    else:
        residual = x.residual
        attended = _fused_attention(block, block.ln_1(x.query), block.ln_1(x.key),
                                    block.ln_1(x.value), attn_mask, causal)
    out = residual + block.ls_1(attended)
    return out + block.ls_2(block.mlp(block.ln_2(out)))


def run_blocks(blocks, x: torch.Tensor, attn_mask=None, batch_first=True, layer_hook=None,
               causal: bool = False, checkpointing: bool = False):
    """``x`` through every block; ``layer_hook(index, x)`` may return a tensor or
    ``AttentionInputs`` for block ``index``. With ``checkpointing`` (and autograd
    recording) every block is recomputed in the backward pass instead of keeping its
    activations; the hook runs outside, once."""
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
