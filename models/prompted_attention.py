"""The one prompted-attention block: a frozen open_clip residual block run on its own weights.

Every encoder here (``TextEncoder``, ``VisionEncoder``) runs the frozen blocks one at a
time through ``run_block``. The input of a block is either

* a tensor ``x`` [N, L, D]: the block's own forward (ordinary and deep prompting), or
* ``AttentionInputs``: separate query, key and value streams plus the residual stream,
  which is what RPP's self-attention prompts (SAPL) need: the frozen attention takes its
  query, key and value from sequences whose prompt slots hold different prompts.

The block's own modules do the work (``ln_1``, ``attention``, ``ls_1``, ``ln_2``,
``mlp``, ``ls_2``); nothing of CLIP is copied or re-implemented. open_clip's
``ResidualAttentionBlock.forward`` ignores separate keys/values unless the block was
built for cross-attention, which is why the separate path calls ``block.attention``.
"""
from dataclasses import dataclass
from typing import Optional, Union

import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

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


def _seq_first(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1)


def run_block(block: nn.Module, x: BlockInput, attn_mask: Optional[torch.Tensor] = None,
              batch_first: bool = True) -> torch.Tensor:
    """Output [N, L, D] of a frozen residual block; hooks always see batch-first tensors."""
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


def run_blocks(blocks, x: torch.Tensor, attn_mask=None, batch_first=True, layer_hook=None):
    """``x`` through every block; ``layer_hook(index, x)`` may return a tensor or
    ``AttentionInputs`` for block ``index``."""
    for index, block in enumerate(blocks):
        block_input = layer_hook(index, x) if layer_hook is not None else x
        x = run_block(block, block_input, attn_mask=attn_mask, batch_first=batch_first)
    return x
