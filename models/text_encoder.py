"""The one text encoder: CLIP's text tower fed with embeddings instead of token ids.

Prompt learners build the input sequence themselves (learned context vectors
spliced between the SOS embedding and the class-name embeddings), so the text
tower must start from embeddings. Deep-prompt methods (MaPLe, IVLP, PromptSRC)
also replace prompt tokens before later layers; ``layer_hook`` is where they do
that, which is why the frozen open_clip blocks are run one at a time here.

CLIP's text tower is causal and reads each sequence's feature at its EOT token, so
nothing after the last EOT of a batch can change the result: every batch is encoded
only up to its longest EOT position (class prompts are 10-30 of the 77 tokens), which
gives the features of the full 77-token pass within fp32 rounding. Prompt slots start
at token 1, before any EOT, so layer hooks see trimmed sequences with their slots
intact. ``full_context()`` (or ``TextEncoder.trim_to_eot = False``) encodes all
``context_length`` tokens, as CLIP's own ``encode_text`` and the official
CoOp/MaPLe code do: the reference of the tests and of the benchmark.

Activation checkpointing of the text blocks follows open_clip's own switch,
``clip_model.transformer.grad_checkpointing`` (set from the config by
``models.encoder_options``).
"""
from contextlib import contextmanager, nullcontext
from typing import Callable, Optional

import torch
from torch import nn

from .clip_loader import tokenize
from .prompted_attention import is_causal_mask, run_blocks

# layer_hook(layer_index, x [N, L, D]) -> x or (Slot)AttentionInputs, called before block ``layer_index``
LayerHook = Callable[[int, torch.Tensor], torch.Tensor]


@contextmanager
def full_context(enabled: bool = True):
    """Inside, every ``TextEncoder`` encodes all ``context_length`` tokens (no trimming)."""
    previous = TextEncoder.trim_to_eot
    TextEncoder.trim_to_eot = not enabled
    try:
        yield
    finally:
        TextEncoder.trim_to_eot = previous


class TextEncoder(nn.Module):
    """CLIP's text tower over prompt embeddings; shares (does not copy) CLIP's frozen modules."""

    # Encode a batch only up to its longest EOT position (exact for a causal tower).
    trim_to_eot = True

    def __init__(self, clip_model):
        super().__init__()
        if getattr(clip_model, "text_pool_type", "argmax") != "argmax":
            raise ValueError(
                f"TextEncoder pools the EOT token by argmax of token ids; this CLIP pools with "
                f"{clip_model.text_pool_type!r}"
            )
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        # Shared tensor, not a copy; non-persistent so it never lands in checkpoints.
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        # Trimming and the fused causal kernel are exact only for a causal mask.
        self.causal = is_causal_mask(clip_model.attn_mask)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the transformer computes in (fp32, or fp16/bf16 after a cast)."""
        return self.transformer.get_cast_dtype()

    @property
    def context_length(self) -> int:
        return self.positional_embedding.shape[0]

    @property
    def num_layers(self) -> int:
        return len(self.transformer.resblocks)

    def prompt_entry(self, start: int, n_tokens: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """What the input stage does to prompt tokens [n, D] placed at ``start``: add their
        positional embeddings (in the transformer's dtype). Methods that feed layer 0 a
        second prompt for the same slots (RPP's keys/values) put it through this."""
        positions = self.positional_embedding[start:start + n_tokens]

        def entry(prompt: torch.Tensor) -> torch.Tensor:
            return prompt.to(self.dtype) + positions.to(self.dtype)

        return entry

    def embed(self, tokenized: torch.Tensor) -> torch.Tensor:
        """Token embeddings [N, L, D] of token ids [N, L], in the transformer's dtype."""
        tokenized = tokenized.to(self.token_embedding.weight.device)
        return self.token_embedding(tokenized).to(self.dtype)

    def encoded_length(self, eot_index: torch.Tensor, seq_len: int) -> int:
        """How many leading tokens of a [N, seq_len] batch with EOTs at ``eot_index`` are encoded."""
        if not (self.trim_to_eot and self.causal) or eot_index.numel() == 0:
            return seq_len
        return min(seq_len, int(eot_index.max()) + 1)

    @property
    def checkpointing(self) -> bool:
        return bool(getattr(self.transformer, "grad_checkpointing", False))

    def forward(
        self,
        prompt_embeddings: torch.Tensor,
        tokenized: torch.Tensor,
        layer_hook: Optional[LayerHook] = None,
    ) -> torch.Tensor:
        """Text features [N, embed_dim] of prompt embeddings [N, L, D].

        ``tokenized`` [N, L] only locates each sequence's EOT token (the largest
        id); tokens after the batch's last EOT are not encoded (module docstring).
        With ``layer_hook=None`` and ``prompt_embeddings = embed(tokenized)`` this
        equals ``clip_model.encode_text(tokenized)`` (exactly under ``full_context()``).
        """
        dtype = self.dtype
        eot_index = tokenized.to(prompt_embeddings.device).argmax(dim=-1)
        seq_len = self.encoded_length(eot_index, prompt_embeddings.shape[1])
        x = prompt_embeddings[:, :seq_len].to(dtype) + self.positional_embedding[:seq_len].to(dtype)
        attn_mask = self.attn_mask[:seq_len, :seq_len] if self.attn_mask is not None else None
        x = run_blocks(self.transformer.resblocks, x, attn_mask=attn_mask,
                       batch_first=getattr(self.transformer, "batch_first", True),
                       layer_hook=layer_hook, causal=self.causal,
                       checkpointing=self.checkpointing)
        # ln_final is per token: normalising only the EOT tokens gives the same features
        x = self.ln_final(x[torch.arange(x.shape[0], device=x.device), eot_index])
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        if self.text_projection is not None:
            return x @ self.text_projection
        return x

    def encode_texts(self, texts, batch_size: int = 256) -> torch.Tensor:
        """Features [N, embed_dim] of plain strings, encoded in chunks of ``batch_size``."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        needs_grad = any(p.requires_grad for p in self.parameters())
        features = []
        with nullcontext() if needs_grad else torch.no_grad():
            for start in range(0, len(texts), batch_size):
                tokens = tokenize(texts[start:start + batch_size], context_length=self.context_length)
                tokens = tokens.to(self.token_embedding.weight.device)
                features.append(self(self.embed(tokens), tokens))
        if not features:
            raise ValueError("encode_texts needs at least one text")
        return torch.cat(features)
