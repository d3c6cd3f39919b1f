"""How the frozen CLIP encoders execute, as config keys (``MODEL.TEXT_ENCODER``).

Not a method's option, so not under ``TRAINER.<METHOD>``: every trainer that back-propagates
through the text tower (CoOp, POMP, IVLP, MaPLe, RPP, ...) can use it.

``MODEL.TEXT_ENCODER.GRAD_CHECKPOINTING`` keeps only each text block's input during the
forward pass and recomputes the block in the backward pass: the text activations of K
sampled classes (POMP/RPP recipe: K = 1000) shrink to one [K, L, D] tensor per layer, for
about one extra text forward pass per step. Gradients are the same as without it. It sets
open_clip's own switch, ``clip_model.transformer.grad_checkpointing``, which
``models.text_encoder.TextEncoder`` follows.
"""
from engine.config_extension import add_node, config_extension


@config_extension
def add_text_encoder_keys(cfg):
    add_node(cfg, "MODEL.TEXT_ENCODER", {
        "GRAD_CHECKPOINTING": False,  # recompute text blocks in the backward pass (less memory)
    })


def apply_encoder_options(clip_model, cfg):
    """Set ``clip_model``'s execution switches from ``cfg`` (missing keys: defaults); returns it."""
    options = cfg.MODEL.get("TEXT_ENCODER", None)
    checkpointing = bool(options.get("GRAD_CHECKPOINTING", False)) if options is not None else False
    clip_model.transformer.grad_checkpointing = checkpointing
    return clip_model
