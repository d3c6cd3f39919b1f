"""Per-class prompt sequences: [SOS] context [class name] . [EOT], as token embeddings.

The frozen pieces (SOS; class-name tokens, full stop, EOT and padding) are computed
once from CLIP's token embedding and kept as non-persistent buffers, so checkpoints
hold only the learned context and a prompt trained on one set of class names can
be evaluated on another.
"""
import torch
import torch.nn as nn

from models.clip_loader import tokenize

POSITIONS = ("end", "middle", "front")


class ClassPromptAssembler(nn.Module):
    def __init__(self, clip_model, classnames, prompt_prefix, n_ctx, position="end"):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"CLASS_TOKEN_POSITION must be one of {POSITIONS}, got {position!r}")
        self.n_ctx = n_ctx
        self.position = position
        self.name_lens = [int((tokenize([name])[0] != 0).sum()) - 2 for name in classnames]
        prompts = [f"{prompt_prefix} {name}." for name in classnames]
        tokenized = tokenize(prompts)
        device = clip_model.token_embedding.weight.device
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized.to(device)).float()
        self.register_buffer("tokenized_prompts", tokenized.to(device), persistent=False)
        self.register_buffer("token_prefix", embedding[:, :1], persistent=False)
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:], persistent=False)

    @property
    def n_cls(self):
        return self.token_prefix.shape[0]

    def forward(self, ctx):
        """Prompt embeddings [n_cls, L, D] for context [n_ctx, D] (shared) or [n_cls, n_ctx, D]."""
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        ctx = ctx.to(self.token_prefix.dtype)
        prefix, suffix = self.token_prefix, self.token_suffix
        if self.position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        rows = []
        half = self.n_ctx // 2
        for i, name_len in enumerate(self.name_lens):
            class_tokens = suffix[i:i + 1, :name_len]
            rest = suffix[i:i + 1, name_len:]
            if self.position == "middle":
                parts = [prefix[i:i + 1], ctx[i:i + 1, :half], class_tokens, ctx[i:i + 1, half:], rest]
            else:
                parts = [prefix[i:i + 1], class_tokens, ctx[i:i + 1], rest]
            rows.append(torch.cat(parts, dim=1))
        return torch.cat(rows, dim=0)

    def per_image(self, ctx):
        """Prompts [B * n_cls, L, D] (image-major) for per-image contexts [B, n_ctx, D].

        Only the "end" layout, which is what image-conditioned prompts (CoCoOp) use; the
        frozen pieces are broadcast over the images instead of looping.
        """
        if self.position != "end":
            raise ValueError("per-image prompts support CLASS_TOKEN_POSITION 'end' only")
        batch, n_cls = ctx.shape[0], self.n_cls
        prefix = self.token_prefix.unsqueeze(0).expand(batch, -1, -1, -1)
        suffix = self.token_suffix.unsqueeze(0).expand(batch, -1, -1, -1)
        ctx = ctx.to(prefix.dtype).unsqueeze(1).expand(-1, n_cls, -1, -1)
        prompts = torch.cat([prefix, ctx, suffix], dim=2)
        return prompts.reshape(batch * n_cls, *prompts.shape[2:])
