"""Deep prompts: one mechanism for "this layer's prompt tokens are replaced by its own prompt".

Deep prompting methods (VPT, IVLP, MaPLe, PromptSRC, RPP) give the input of layer 0 a
set of prompt tokens and, for layers ``1 .. depth-1``, overwrite those same token
positions with that layer's learned prompt before the frozen block runs. The text and
the vision side differ only in *where* the prompt tokens sit:

* text: tokens ``[1 : 1 + n]`` (right after SOS), ``text_slots(n)``;
* vision: the last ``n`` tokens (appended after the positional embedding),
  ``vision_slots(n)``.

``PromptSlots`` owns that slot logic (select / replace), ``DeepPromptHook`` applies a
per-layer prompt through it and is what ``TextEncoder`` and ``VisionEncoder`` take as
``layer_hook``. A method that gives a layer separate query/key/value prompts (RPP) keeps
``PromptSlots`` as is and hands the slots and its per-stream prompts to the frozen
block (``models/sapl.py``, ``models.prompted_attention.SlotAttentionInputs``).

Widths always come from the model (``text_width``, ``VisionEncoder.width``).

The frozen CLIP + prompt learner model that uses these hooks is
``models.prompted_clip.PromptedCLIP``.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from engine.user_errors import UserError
from models.prompt_init import RANDOM_INIT_STD, word_embeddings


class PromptDepthError(UserError):
    """A prompt depth that the backbone cannot take."""


# --------------------------------------------------------------------------- slots


class PromptSlots:
    """Positions of ``n`` prompt tokens in a sequence ``x`` [N, L, D].

    ``start`` >= 0 counts from the sequence start (text: 1, after SOS); ``start=None``
    means the last ``n`` tokens (vision prompts appended at the end).
    """

    def __init__(self, n: int, start: Optional[int] = None):
        if n < 0 or (start is not None and start < 0):
            raise ValueError(f"bad prompt slots n={n}, start={start}")
        self.n = n
        self.start = start

    def __repr__(self):
        where = "end" if self.start is None else f"start={self.start}"
        return f"PromptSlots(n={self.n}, {where})"

    def bounds(self, seq_len: int) -> Tuple[int, int]:
        begin = seq_len - self.n if self.start is None else self.start
        end = begin + self.n
        if begin < 0 or end > seq_len:
            raise ValueError(f"{self!r} does not fit a sequence of {seq_len} tokens")
        return begin, end

    def select(self, x: torch.Tensor) -> torch.Tensor:
        """The prompt tokens [N, n, D] of ``x``."""
        begin, end = self.bounds(x.shape[1])
        return x[:, begin:end]

    def check_prompt(self, prompt: torch.Tensor, width: int):
        """ValueError unless ``prompt`` ([n, D] or [N, n, D]) fits these slots at ``width``."""
        if prompt.shape[-2] != self.n or prompt.shape[-1] != width:
            raise ValueError(f"prompt of shape {tuple(prompt.shape)} does not fit {self!r} of width {width}")

    def replace(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """``x`` with its prompt tokens replaced by ``prompt`` ([n, D] shared or [N, n, D]).

        Out of place (autograd-safe); ``prompt`` is cast to ``x``'s dtype, so the
        same fp32 parameters serve fp32, fp16 and bf16 runs.
        """
        begin, end = self.bounds(x.shape[1])
        self.check_prompt(prompt, x.shape[-1])
        if prompt.dim() == 2:
            prompt = prompt.unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, :begin], prompt.to(x.dtype), x[:, end:]], dim=1)


def text_slots(n: int) -> PromptSlots:
    """Text prompts sit right after the SOS token: ``[1 : 1 + n]``."""
    return PromptSlots(n, start=1)


def vision_slots(n: int) -> PromptSlots:
    """Vision prompts are the last ``n`` tokens of the sequence."""
    return PromptSlots(n, start=None)


# --------------------------------------------------------------------------- the hook


class DeepPromptHook:
    """``layer_hook`` that replaces the prompt slots of layer ``first_layer + i`` with ``prompts[i]``.

    Layers without a prompt (layer 0, whose prompts are part of the input, and layers
    at or beyond the depth) pass through unchanged. Built per forward pass from the
    current prompt tensors (parameters, or projections of them as in MaPLe).
    """

    def __init__(self, slots: PromptSlots, prompts: Sequence[torch.Tensor] = (), first_layer: int = 1):
        self.slots = slots
        self.layer_prompts: Dict[int, torch.Tensor] = {
            first_layer + i: prompt for i, prompt in enumerate(prompts)
        }

    def prompt_for(self, layer_index: int):
        return self.layer_prompts.get(layer_index)

    def __call__(self, layer_index: int, x: torch.Tensor) -> torch.Tensor:
        prompt = self.prompt_for(layer_index)
        return x if prompt is None else self.slots.replace(x, prompt)


# --------------------------------------------------------------------------- building blocks


def text_width(clip_model) -> int:
    return clip_model.token_embedding.weight.shape[1]


def text_layers(clip_model) -> int:
    return len(clip_model.transformer.resblocks)


def check_depth(depth: int, num_layers: int, key: str, minimum: int = 0) -> int:
    """``depth`` if ``minimum <= depth <= num_layers``, else one clear PromptDepthError."""
    depth = int(depth)
    if depth < minimum:
        raise PromptDepthError(f"{key} is {depth}; it must be at least {minimum}")
    if depth > num_layers:
        raise PromptDepthError(
            f"{key} is {depth} but the backbone has only {num_layers} layers on that side; "
            f"set {key} to at most {num_layers}"
        )
    return depth


def random_prompts(n_tokens: int, width: int) -> torch.Tensor:
    vectors = torch.empty(n_tokens, width)
    nn.init.normal_(vectors, std=RANDOM_INIT_STD)
    return vectors


def make_deep_prompts(count: int, n_tokens: int, width: int) -> nn.ParameterList:
    """``count`` learnable prompts [n_tokens, width] ~ N(0, 0.02) (layers 1 .. count)."""
    return nn.ParameterList([nn.Parameter(random_prompts(n_tokens, width)) for _ in range(count)])


def init_leading_context(clip_model, n_ctx: int, ctx_init: str = ""):
    """MaPLe/IVLP's first-layer text context: (vectors [n_ctx, D], prompt prefix).

    With ``ctx_init`` ("a photo of a") of at least ``n_ctx`` word tokens, the vectors
    are the first ``n_ctx`` word embeddings and the prefix keeps the *whole* text, so
    the remaining words ("of a") stay as fixed tokens of the prompt. Otherwise random
    N(0, 0.02) vectors with "X" placeholders.
    """
    text = ctx_init.replace("_", " ").strip() if ctx_init else ""
    if text:
        words = word_embeddings(clip_model, text)
        if n_ctx <= words.shape[0]:
            return words[:n_ctx].clone(), text
        print(f'CTX_INIT "{text}" has fewer than {n_ctx} tokens: random initialisation instead')
    return random_prompts(n_ctx, text_width(clip_model)), " ".join(["X"] * n_ctx)
