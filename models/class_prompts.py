"""Per-class prompt sequences: [SOS] context [class name] . [EOT], as token embeddings.

Only the token ids of every class prompt are kept (a non-persistent buffer, [C, L]);
the frozen embeddings of SOS, class-name tokens, full stop, EOT and padding are looked
up in CLIP's token embedding for the classes a forward pass asks for. So memory does
not hold a [C, L, D] tensor for 21K classes, class-sampled training embeds only the
sampled classes, checkpoints hold only the learned context, and a prompt trained on
one set of class names can be evaluated on another.
"""
import torch
import torch.nn as nn

from models.clip_loader import tokenize

POSITIONS = ("end", "middle", "front")


class ClassTokens(nn.Module):
    """Token ids of one prompt per class ([C, L], a non-persistent buffer) and lookups of
    their frozen embeddings in CLIP's token embedding."""

    def __init__(self, clip_model, texts):
        super().__init__()
        # CLIP's frozen embedding table, shared and deliberately not registered: it is
        # part of the text encoder, so it must not appear in the prompt checkpoint.
        object.__setattr__(self, "token_embedding", clip_model.token_embedding)
        device = clip_model.token_embedding.weight.device
        self.register_buffer("tokenized_prompts", tokenize(list(texts)).to(device), persistent=False)

    @property
    def n_cls(self):
        return self.tokenized_prompts.shape[0]

    def tokens(self, class_ids=None):
        """Token ids [n, L] of the prompts of ``class_ids`` (all classes when None)."""
        return self.tokenized_prompts if class_ids is None else self.tokenized_prompts[class_ids]

    @torch.no_grad()
    def token_embeddings(self, class_ids=None):
        """Frozen embeddings [n, L, D] (fp32) of the prompts of ``class_ids``."""
        tokens = self.tokens(class_ids).to(self.token_embedding.weight.device)
        return self.token_embedding(tokens).float()


class ClassPromptAssembler(ClassTokens):
    """"{prompt_prefix} {class name}." per class, whose prefix tokens the learned context replaces."""

    def __init__(self, clip_model, classnames, prompt_prefix, n_ctx, position="end"):
        if position not in POSITIONS:
            raise ValueError(f"CLASS_TOKEN_POSITION must be one of {POSITIONS}, got {position!r}")
        super().__init__(clip_model, [f"{prompt_prefix} {name}." for name in classnames])
        self.n_ctx = n_ctx
        self.position = position
        self.name_lens = (
            [int((tokenize([name])[0] != 0).sum()) - 2 for name in classnames]
            if position != "end" else None
        )

    def frozen_embeddings(self, class_ids=None):
        """(prefix [n, 1, D], suffix [n, L - 1 - n_ctx, D]) of the frozen tokens, fp32."""
        embedding = self.token_embeddings(class_ids)
        return embedding[:, :1], embedding[:, 1 + self.n_ctx:]

    def forward(self, ctx, class_ids=None):
        """Prompt embeddings [n, L, D] for context [n_ctx, D] (shared) or [n_cls, n_ctx, D]
        (class-specific), for the classes ``class_ids`` (all classes when None)."""
        prefix, suffix = self.frozen_embeddings(class_ids)
        count = prefix.shape[0]
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(count, -1, -1)
        elif class_ids is not None:
            ctx = ctx[class_ids]
        ctx = ctx.to(prefix.dtype)
        if self.position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        ids = range(self.n_cls) if class_ids is None else class_ids.tolist()
        rows = []
        half = self.n_ctx // 2
        for row, class_id in enumerate(ids):
            name_len = self.name_lens[class_id]
            class_tokens = suffix[row:row + 1, :name_len]
            rest = suffix[row:row + 1, name_len:]
            if self.position == "middle":
                parts = [prefix[row:row + 1], ctx[row:row + 1, :half], class_tokens,
                         ctx[row:row + 1, half:], rest]
            else:
                parts = [prefix[row:row + 1], class_tokens, ctx[row:row + 1], rest]
            rows.append(torch.cat(parts, dim=1))
        return torch.cat(rows, dim=0)

    def text_inputs(self, ctx, class_ids=None, layer_hook=None):
        """What a prompt learner's ``text_inputs`` returns: (prompt embeddings, token ids,
        layer hook) for the classes ``class_ids`` (all when None)."""
        return self(ctx, class_ids), self.tokens(class_ids), layer_hook

    def per_image(self, ctx):
        """Prompts [B * n_cls, L, D] (image-major) for per-image contexts [B, n_ctx, D].

        Only the "end" layout, which is what image-conditioned prompts (CoCoOp) use; the
        frozen pieces are broadcast over the images instead of looping.
        """
        if self.position != "end":
            raise ValueError("per-image prompts support CLASS_TOKEN_POSITION 'end' only")
        batch, n_cls = ctx.shape[0], self.n_cls
        token_prefix, token_suffix = self.frozen_embeddings()
        prefix = token_prefix.unsqueeze(0).expand(batch, -1, -1, -1)
        suffix = token_suffix.unsqueeze(0).expand(batch, -1, -1, -1)
        ctx = ctx.to(prefix.dtype).unsqueeze(1).expand(-1, n_cls, -1, -1)
        prompts = torch.cat([prefix, ctx, suffix], dim=2)
        return prompts.reshape(batch * n_cls, *prompts.shape[2:])


class AssembledPrompts:
    """Mixin for prompt learners whose class prompts come from ``self.assembler``."""

    @property
    def n_cls(self):
        return self.assembler.n_cls

    @property
    def tokenized_prompts(self):
        return self.assembler.tokenized_prompts


class FixedClassPrompts(ClassTokens):
    """Hand-written class prompts ("a photo of a {}.") with nothing learned: the text
    side of methods that prompt only the image (VPT) or switch text prompts off (RPP)."""

    learns_text = False

    def text_inputs(self, class_ids=None):
        """What a prompt learner's ``text_inputs`` returns: (embeddings [n, L, D] fp32,
        token ids [n, L], no layer hook) for the prompts of ``class_ids`` (all when None)."""
        return self.token_embeddings(class_ids), self.tokens(class_ids), None
