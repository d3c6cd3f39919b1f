"""CLIP for the toolbox: backbone names, the one loader, the one text encoder, templates."""
from .backbones import (
    COOP_BACKBONES,
    TINY_BACKBONES,
    BackboneSpec,
    UnknownBackboneError,
    parse_backbone_name,
    valid_backbone_names,
)
from .clip_loader import (
    WeightsFileError,
    WeightsMismatchError,
    WeightsNotFoundError,
    input_resolution,
    load_clip,
    load_clip_from_cfg,
    resolve_weights,
    tokenize,
)
from .templates import (
    CUSTOM_TEMPLATES,
    DEFAULT_TEMPLATE,
    IMAGENET_TEMPLATES,
    IMAGENET_TEMPLATES_SELECT,
    template_for,
)
from .text_encoder import TextEncoder

__all__ = [
    "COOP_BACKBONES",
    "TINY_BACKBONES",
    "BackboneSpec",
    "UnknownBackboneError",
    "parse_backbone_name",
    "valid_backbone_names",
    "WeightsFileError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "input_resolution",
    "load_clip",
    "load_clip_from_cfg",
    "resolve_weights",
    "tokenize",
    "CUSTOM_TEMPLATES",
    "DEFAULT_TEMPLATE",
    "IMAGENET_TEMPLATES",
    "IMAGENET_TEMPLATES_SELECT",
    "template_for",
    "TextEncoder",
]
