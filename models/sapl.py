"""SAPL: RPP's self-attention prompts, separate query, key and value prompts per layer.

In every prompted layer l of one encoder, three learnable prompts replace the prompt
slots of the layer input separately, and the frozen attention takes its query, key and
value from the three sequences:

    X_Q = LN(Rep(X, P_Q)),  X_K = LN(Rep(X, P_K)),  X_V = LN(Rep(X, P_V))

(``models.prompted_attention.run_block`` runs the frozen block on them, from
``SlotAttentionInputs``: X once plus the prompts, not three copies of X). With
``shared=True`` there is one prompt per layer and this is ordinary deep prompting
(IVLP/VPT-deep) exactly: the same ``DeepPromptHook``, the same block forward.

Layer 0's query prompt is part of the encoder's input (text: the context tokens of the
class prompts; vision: tokens appended to the image sequence), so it goes through the
input stage (positional embedding / ``ln_pre``) like any input token; layer 0's key and
value prompts go through the same input stage (``entry``) before they replace the slots.
Deeper layers replace the slots with the raw prompts, as deep prompting does.

Where the paper is silent, these are switches (docs/method.md): the residual stream at
the prompt slots (``residual``: "query" adds the attention output to Rep(X, P_Q), the
choice that reduces to deep prompting when the prompts are tied; "input" keeps X) and
the initialisation of the key/value prompts (``qkv_init``: "tied" copies of the query
prompts, so training starts from deep prompting; "independent" draws).
"""
from typing import Callable, Optional

import torch
from torch import nn

from engine.config_errors import ConfigError
from models.deep_prompts import DeepPromptHook, PromptSlots, random_prompts
from models.prompted_attention import SlotAttentionInputs

ROLES = ("query", "key", "value")
RESIDUAL_CHOICES = ("query", "input")
QKV_INIT_CHOICES = ("tied", "independent")


def check_choice(value, choices, key):
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


class SAPLPrompts(nn.Module):
    """The prompts of one encoder side, layers ``0 .. depth - 1``.

    Parameters: ``prompts.<layer>`` when shared, else ``query.<layer>``,
    ``key.<layer>``, ``value.<layer>`` ([n_tokens, width] each). ``first_layer`` gives
    layer 0's initial vectors (e.g. CTX_INIT word embeddings); other layers start as
    N(0, 0.02).
    """

    def __init__(self, depth: int, n_tokens: int, width: int, shared: bool = False,
                 first_layer: Optional[torch.Tensor] = None, qkv_init: str = "tied"):
        super().__init__()
        if depth < 1:
            raise ValueError("SAPLPrompts needs a depth of at least 1")
        check_choice(qkv_init, QKV_INIT_CHOICES, "QKV_INIT")
        self.depth, self.shared = depth, bool(shared)

        def initial(layer):
            if layer == 0 and first_layer is not None:
                return first_layer.detach().clone().float()
            return random_prompts(n_tokens, width)

        if self.shared:
            self.prompts = nn.ParameterList([nn.Parameter(initial(i)) for i in range(depth)])
            return
        query = [initial(i) for i in range(depth)]
        self.query = nn.ParameterList([nn.Parameter(v) for v in query])
        for role in ("key", "value"):
            values = [v.clone() for v in query] if qkv_init == "tied" else [initial(i) for i in range(depth)]
            setattr(self, role, nn.ParameterList([nn.Parameter(v) for v in values]))

    def layer_prompts(self, role: str):
        """The per-layer prompts of ``role`` (the shared ones for every role when shared)."""
        return list(self.prompts) if self.shared else list(getattr(self, role))

    @property
    def first_query(self) -> torch.Tensor:
        """Layer 0's query prompt: what the encoder input carries in the prompt slots."""
        return self.layer_prompts("query")[0]

    def hook(self, slots: PromptSlots, entry: Callable[[torch.Tensor], torch.Tensor],
             residual: str = "query"):
        """The encoder's ``layer_hook`` for these prompts at ``slots``."""
        if self.shared:
            return DeepPromptHook(slots, self.layer_prompts("query")[1:])
        return SAPLHook(slots, self.layer_prompts("query"), self.layer_prompts("key"),
                        self.layer_prompts("value"), entry, residual)


class SAPLHook:
    """``layer_hook`` giving prompted layers separate query/key/value streams."""

    def __init__(self, slots, query, key, value, entry, residual="query"):
        self.slots = slots
        self.query, self.key, self.value = query, key, value
        self.entry = entry
        self.residual = check_choice(residual, RESIDUAL_CHOICES, "RESIDUAL")

    def __call__(self, layer_index: int, x: torch.Tensor):
        if layer_index >= len(self.query):
            return x
        key, value = self.key[layer_index], self.value[layer_index]
        if layer_index == 0:  # x already holds entry(P_Q) in the slots
            return SlotAttentionInputs(x, self.slots, key=self.entry(key), value=self.entry(value))
        query = self.query[layer_index]
        if self.residual == "query":  # the residual stream is the query stream Rep(X, P_Q)
            return SlotAttentionInputs(self.slots.replace(x, query), self.slots, key=key, value=value)
        return SlotAttentionInputs(x, self.slots, query=query, key=key, value=value)
