"""Frozen CLIP + a prompt learner: logits = scale * cos(image feature, class prompt feature).

One model for every prompt learner whose class text does not depend on the image
(CoOp, IVLP, VPT, MaPLe, ...). The prompt learner provides

* ``text_inputs()`` -> (prompt embeddings [C, L, D], tokenized [C, L], layer_hook or None)
* ``vision_inputs()`` -> (first-layer prompts [n, width] or None, layer_hook or None)
* ``learns_text`` (bool): False when the class text never changes.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.text_encoder import TextEncoder
from models.vision_encoder import VisionEncoder


class PromptedCLIP(nn.Module):
    def __init__(self, clip_model, prompt_learner, image_encoder: Optional[VisionEncoder] = None):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.image_encoder = image_encoder if image_encoder is not None else VisionEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self._cached_text_features = None

    def text_features(self) -> torch.Tensor:
        # Class features do not depend on the image, so evaluation (no_grad) computes them
        # once and reuses them; ClipTrainer.test and load_model clear the cache, and any
        # forward with gradients (a training step, after which the prompts change) drops it.
        learned = self.prompt_learner.learns_text
        if learned and torch.is_grad_enabled():
            self._cached_text_features = None
        caching = not learned or not torch.is_grad_enabled()
        if caching and self._cached_text_features is not None:
            return self._cached_text_features
        embeddings, tokenized, hook = self.prompt_learner.text_inputs()
        features = F.normalize(self.text_encoder(embeddings, tokenized, layer_hook=hook).float(), dim=-1)
        if caching:
            features = self._cached_text_features = features.detach()
        return features

    def clear_text_feature_cache(self):
        self._cached_text_features = None

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        prompts, hook = self.prompt_learner.vision_inputs()
        features = self.image_encoder(image, layer_hook=hook, prompts=prompts)
        return F.normalize(features.float(), dim=-1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image_features = self.image_features(image)
        return self.logit_scale.exp().float() * image_features @ self.text_features().t()
