"""Backbone names: what ``MODEL.BACKBONE.NAME`` may say and which CLIP it builds.

Four kinds of names are accepted:

* CoOp's names for OpenAI's released models: ``RN50``, ``RN101``, ``RN50x4``,
  ``RN50x16``, ``RN50x64``, ``ViT-B/32``, ``ViT-B/16``, ``ViT-L/14``,
  ``ViT-L/14@336px``. They always mean OpenAI's weights.
* open_clip's architecture names, optionally followed by ``:<pretrained tag>``,
  e.g. ``ViT-B-16`` or ``ViT-B-16:laion2b_s34b_b88k``. Without a tag the name
  means OpenAI's weights when open_clip lists them for that architecture.
  Only architectures open_clip builds as a plain ``open_clip.model.CLIP`` with
  an argmax-pooled causal text transformer are accepted (what prompt learners need).
* ``tiny-vit`` and ``tiny-rn``: CLIPs of a few MB with seeded random weights,
  for tests (``INPUT.SIZE (32, 32)``).
* ``demo-clip``: a tiny CLIP whose weights ship with the repo
  (``models/weights/demo_clip.safetensors``), pre-trained by
  ``tools/pretrain_demo_clip.py`` on captions of the generated demo world
  (``INPUT.SIZE (32, 32)``): a CLIP that knows something, small enough for a CPU.

Names are matched case-insensitively. This module only names and builds
architectures; finding and loading weights lives in ``models/clip_loader.py``.
"""
import copy
import difflib
import functools
import os
from dataclasses import dataclass, field
from typing import Optional

import open_clip
import torch
from open_clip.model import CLIP

from engine.user_errors import user_error

OPENAI_TAG = "openai"

# CoOp name -> open_clip config. OpenAI trained with QuickGELU, so the
# ``-quickgelu`` configs are the ones whose activations match those weights.
COOP_BACKBONES = {
    "RN50": "RN50-quickgelu",
    "RN101": "RN101-quickgelu",
    "RN50x4": "RN50x4-quickgelu",
    "RN50x16": "RN50x16-quickgelu",
    "RN50x64": "RN50x64-quickgelu",
    "ViT-B/32": "ViT-B-32-quickgelu",
    "ViT-B/16": "ViT-B-16-quickgelu",
    "ViT-L/14": "ViT-L-14-quickgelu",
    "ViT-L/14@336px": "ViT-L-14-336-quickgelu",
}

# The standard CLIP text tower, shrunk. Vocabulary and context length stay
# standard so the ordinary CLIP tokenizer works unchanged.
_TINY_TEXT_CFG = dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=3)

# Widths differ on purpose (vision 48 or 256, text 32, joint embedding 40) so code that
# hard-codes one width where another is meant fails on the tiny models too.
TINY_BACKBONES = {
    "tiny-vit": dict(
        embed_dim=40,
        quick_gelu=True,
        vision_cfg=dict(image_size=32, patch_size=8, width=48, layers=3, head_width=24),  # 2 heads
        text_cfg=_TINY_TEXT_CFG,
    ),
    "tiny-rn": dict(
        embed_dim=40,
        quick_gelu=True,
        # ModifiedResNet: stem width 8, one bottleneck per stage -> 256 features,
        # attention pool with 256 // 64 = 4 heads; 32 px in -> 1x1 grid at the pool.
        vision_cfg=dict(image_size=32, layers=[1, 1, 1, 1], width=8, head_width=64),
        text_cfg=_TINY_TEXT_CFG,
    ),
}

# Shipped with the repo: name -> (architecture, weights file relative to models/).
# Standard tokenizer (vocabulary, context 77) so every prompt learner works unchanged;
# the text width is kept small because the 49408-row token embedding dominates the file.
SHIPPED_BACKBONES = {
    "demo-clip": (
        dict(
            embed_dim=64,
            quick_gelu=True,
            vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=4, head_width=16),  # 4 heads
            text_cfg=dict(context_length=77, vocab_size=49408, width=48, heads=4, layers=3),
        ),
        os.path.join("weights", "demo_clip.safetensors"),
    ),
}
MODELS_DIR = os.path.dirname(os.path.abspath(__file__))

# Every architecture is initialised from this seed, so random weights (tiny
# models, PRETRAINED False) are the same on every call and on every machine.
ARCHITECTURE_SEED = 0

TAG_SYNTAX_HINT = "open_clip names take an optional ':<pretrained tag>', e.g. 'ViT-B-16:laion2b_s34b_b88k'"


@user_error  # train.py prints it without a traceback and exits with status 2
class UnknownBackboneError(ValueError):
    """The backbone name is not one this toolbox can build."""


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone name means: an architecture and, if any, published weights."""

    name: str  # canonical spelling, e.g. "ViT-B/16", "ViT-B-16:laion2b_s34b_b88k", "tiny-vit"
    arch: str  # open_clip config name, or the tiny name
    model_cfg: dict = field(repr=False)  # keyword arguments of open_clip.model.CLIP
    pretrained_tag: Optional[str] = None  # open_clip tag of the weights meant; None: none published
    shipped_weights: Optional[str] = None  # absolute path of the weights file shipped with the repo

    @property
    def is_tiny(self) -> bool:
        return self.arch in TINY_BACKBONES

    @property
    def pretrained_cfg(self) -> dict:
        """open_clip's record of the weights (url, hf_hub, quick_gelu, mean, std...)."""
        if self.pretrained_tag is None:
            return {}
        return open_clip.get_pretrained_cfg(self.arch, self.pretrained_tag)


def _builds_plain_clip(model_cfg: dict) -> bool:
    """True if open_clip builds this config as ``CLIP`` with a text tower TextEncoder can drive."""
    text_cfg, vision_cfg = model_cfg["text_cfg"], model_cfg["vision_cfg"]
    return not (
        model_cfg.get("custom_text")
        or "multimodal_cfg" in model_cfg
        or "hf_model_name" in text_cfg
        or "timm_model_name" in vision_cfg
        or text_cfg.get("pool_type", "argmax") != "argmax"
        or text_cfg.get("embed_cls")
        or text_cfg.get("no_causal_mask")
        or text_cfg.get("proj_type", "linear") != "linear"
        or text_cfg.get("proj_bias")
    )


@functools.lru_cache(maxsize=1)
def supported_open_clip_archs() -> tuple:
    """open_clip architecture names this toolbox accepts (plain CLIP models)."""
    return tuple(name for name in open_clip.list_models() if _builds_plain_clip(open_clip.get_model_config(name)))


def valid_backbone_names() -> list:
    """Every accepted name without a tag: CoOp's, the tiny and shipped ones, then open_clip's."""
    return [*COOP_BACKBONES, *TINY_BACKBONES, *SHIPPED_BACKBONES, *supported_open_clip_archs()]


def _closest_first(name: str, candidates) -> list:
    """Candidates sorted by string similarity to ``name``, best first (ties keep their order)."""
    query = name.lower()
    score = {c: difflib.SequenceMatcher(None, query, c.lower()).ratio() for c in candidates}
    return sorted(candidates, key=lambda c: -score[c])


def _unknown_name_error(name: str) -> UnknownBackboneError:
    names = _closest_first(name, valid_backbone_names())
    return UnknownBackboneError(
        f"Unknown backbone {name!r} for MODEL.BACKBONE.NAME. Valid names, closest first: "
        f"{', '.join(names)}. ({TAG_SYNTAX_HINT})"
    )


def _lookup(name: str, candidates) -> Optional[str]:
    """The candidate equal to ``name`` ignoring case, or None."""
    lowered = {c.lower(): c for c in candidates}
    return lowered.get(name.lower())


def _normalise_tag(tag: str) -> str:
    # open_clip's own tag normalisation (its pretrained table is keyed this way)
    return tag.strip().lower().replace("-", "_")


def _open_clip_spec(name: str, arch: str, tag: Optional[str]) -> BackboneSpec:
    model_cfg = open_clip.get_model_config(arch)
    if tag is not None:
        # The activation must match how the weights were trained: OpenAI's (and a
        # few others) used QuickGELU, which open_clip's plain configs do not.
        model_cfg["quick_gelu"] = bool(
            model_cfg.get("quick_gelu") or open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu")
        )
    return BackboneSpec(name=name, arch=arch, model_cfg=model_cfg, pretrained_tag=tag)


def parse_backbone_name(name: str) -> BackboneSpec:
    """Turn ``MODEL.BACKBONE.NAME`` into a BackboneSpec; raises UnknownBackboneError."""
    raw = str(name).strip()
    if raw.startswith(("hf-hub:", "local-dir:")):
        raise UnknownBackboneError(
            f"Backbone {name!r}: 'hf-hub:' and 'local-dir:' names are not supported. Use an open_clip "
            f"architecture name ({TAG_SYNTAX_HINT}) and point MODEL.BACKBONE.PATH at the weights file."
        )
    arch_part, has_tag, tag_part = raw.partition(":")

    if not has_tag:
        coop = _lookup(raw, COOP_BACKBONES)
        if coop is not None:
            return _open_clip_spec(coop, COOP_BACKBONES[coop], OPENAI_TAG)
        tiny = _lookup(raw, TINY_BACKBONES)
        if tiny is not None:
            return BackboneSpec(name=tiny, arch=tiny, model_cfg=copy.deepcopy(TINY_BACKBONES[tiny]))
        shipped = _lookup(raw, SHIPPED_BACKBONES)
        if shipped is not None:
            model_cfg, weights = SHIPPED_BACKBONES[shipped]
            return BackboneSpec(name=shipped, arch=shipped, model_cfg=copy.deepcopy(model_cfg),
                                shipped_weights=os.path.join(MODELS_DIR, weights))

    # open_clip spells architectures with '-' where CoOp uses '/'
    arch = _lookup(arch_part.replace("/", "-"), supported_open_clip_archs())
    if arch is None:
        raise _unknown_name_error(raw)
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not has_tag:
        tag = OPENAI_TAG if OPENAI_TAG in tags else None
        return _open_clip_spec(arch, arch, tag)
    tag = _normalise_tag(tag_part)
    if tag not in tags:
        listed = ", ".join(f"{arch}:{t}" for t in _closest_first(tag, tags)) or "(none)"
        raise UnknownBackboneError(
            f"Unknown pretrained tag {tag_part!r} for open_clip architecture {arch!r} "
            f"(backbone {name!r}). Valid names, closest first: {listed}."
        )
    return _open_clip_spec(f"{arch}:{tag}", arch, tag)


def build_clip_architecture(spec: BackboneSpec, seed: int = ARCHITECTURE_SEED) -> CLIP:
    """A randomly initialised fp32 ``open_clip.model.CLIP`` for ``spec``.

    The initialisation is seeded (same weights on every call) inside a forked
    RNG, so the caller's global random stream is left exactly where it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIP(**copy.deepcopy(spec.model_cfg))
