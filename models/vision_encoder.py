"""The one image encoder: CLIP's vision tower run block by block, with room for prompts.

For a ViT tower (open_clip ``VisionTransformer``) the forward pass is open_clip's own,
step by step, calling the tower's own modules (conv1, class/positional embedding,
patch dropout, ln_pre, each residual block, ln_post, pooling, proj). With no prompts and
no hook it gives exactly ``clip_model.encode_image``. Two additions make deep visual
prompting possible without forking CLIP:

* ``prompts`` [n, width] (or [N, n, width]) are appended at the end of the token
  sequence, after the positional embedding (and patch dropout), before ln_pre, as
  VPT/IVLP/MaPLe do; they are dropped again before pooling;
* ``layer_hook(layer_index, x [N, L, D])`` is called before every block, so deeper
  layers can replace the prompt tokens (see ``models.deep_prompts``); it returns ``x`` or
  separate query/key/value streams (``models.prompted_attention``).

The blocks run on the fused attention path of ``models.prompted_attention``, and are
recomputed in the backward pass when open_clip's own switch
``visual.transformer.grad_checkpointing`` is on.

A ModifiedResNet tower (RN50, ``tiny-rn``) has no token sequence: its plain forward
works, asking for vision prompts raises ``VisionPromptsUnsupported``.
"""
from typing import Callable, Optional

import torch
from open_clip.transformer import VisionTransformer
from torch import nn

from engine.user_errors import UserError
from models.prompted_attention import run_blocks

LayerHook = Callable[[int, torch.Tensor], torch.Tensor]


class VisionPromptsUnsupported(UserError):
    """Deep vision prompts were asked of a tower that has no token sequence."""


class VisionEncoder(nn.Module):
    """CLIP's image tower; shares (does not copy) the frozen open_clip modules."""

    def __init__(self, clip_model, backbone_name: str = ""):
        super().__init__()
        self.visual = clip_model.visual
        self.backbone_name = backbone_name or type(self.visual).__name__
        self.unsupported_reason = ""
        if not isinstance(self.visual, VisionTransformer):
            self.unsupported_reason = (
                f"its image tower is a {type(self.visual).__name__}, not a vision transformer"
            )
        elif self.visual.attn_pool is not None:
            self.unsupported_reason = "its vision transformer pools with an attentional pooler"

    # ------------------------------------------------------------------ properties

    @property
    def supports_prompts(self) -> bool:
        return not self.unsupported_reason

    def check_prompts_supported(self):
        if self.unsupported_reason:
            raise VisionPromptsUnsupported(
                f"Backbone {self.backbone_name!r} cannot take deep vision prompts: "
                f"{self.unsupported_reason}. Use a ViT backbone (e.g. ViT-B/16, tiny-vit) "
                f"or set the vision prompt depth to 0"
            )

    @property
    def width(self) -> int:
        """Token width of the vision transformer (what a vision prompt must have)."""
        self.check_prompts_supported()
        return self.visual.conv1.out_channels

    @property
    def num_layers(self) -> int:
        self.check_prompts_supported()
        return len(self.visual.transformer.resblocks)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.visual.parameters()).dtype

    def prompt_entry(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """What the input stage does to appended prompt tokens [n, width]: ``ln_pre``.
        Methods that feed layer 0 a second prompt for the same slots (RPP's keys and
        values) put it through this."""
        visual = self.visual

        def entry(prompt: torch.Tensor) -> torch.Tensor:
            return visual.ln_pre(prompt.to(visual.conv1.weight.dtype))

        return entry

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        images: torch.Tensor,
        layer_hook: Optional[LayerHook] = None,
        prompts: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Image features [N, embed_dim]; equals ``clip_model.encode_image`` without prompts."""
        if prompts is not None or layer_hook is not None:
            self.check_prompts_supported()
        if not self.supports_prompts:  # ResNet (or other) tower: its own forward, untouched
            return self.visual(images.to(self.dtype))
        visual = self.visual
        x = visual.conv1(images.to(visual.conv1.weight.dtype))  # [N, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [N, grid**2, width]
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        n_prompts = 0
        if prompts is not None:
            if prompts.dim() == 2:
                prompts = prompts.unsqueeze(0).expand(x.shape[0], -1, -1)
            n_prompts = prompts.shape[1]
            x = torch.cat([x, prompts.to(x.dtype)], dim=1)
        x = visual.ln_pre(x)

        transformer = visual.transformer
        x = run_blocks(transformer.resblocks, x, batch_first=getattr(transformer, "batch_first", True),
                       layer_hook=layer_hook,
                       checkpointing=bool(getattr(transformer, "grad_checkpointing", False)))

        if n_prompts:
            x = x[:, :x.shape[1] - n_prompts]
        if visual.final_ln_after_pool:
            pooled = visual.ln_post(self._global_pool(x))
        else:
            pooled = self._global_pool(visual.ln_post(x))
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled

    def _global_pool(self, x):
        pool_type = self.visual.pool_type
        if pool_type == "tok":
            return x[:, 0]
        if pool_type == "avg":
            return x[:, 1:].mean(dim=1)
        return x
