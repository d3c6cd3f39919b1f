"""Frozen CLIP + a prompt learner: logits = scale * cos(image feature, class prompt feature).

One model for every prompt learner whose class text does not depend on the image
(CoOp, POMP, IVLP, VPT, MaPLe, RPP, ...). The prompt learner provides

* ``text_inputs(class_ids=None)`` -> (prompt embeddings [n, L, D], tokenized [n, L],
  layer_hook or None) for the classes ``class_ids`` (all when None);
* ``vision_inputs()`` -> (first-layer prompts [n, width] or None, layer_hook or None);
* ``learns_text`` (bool): False when the class text never changes (its features are
  then encoded once per run);
* ``learns_vision`` (bool): False when the image features are frozen CLIP's (so a frozen
  teacher on the same CLIP can reuse them).

``forward(image, class_ids)`` gives logits over those classes only, which is how
class-sampled training (``models.class_sampling``) encodes K classes per step instead of
all of them. ``return_features=True`` also returns the normalised image and text features
the logits came from (``CLIPOutputs``), so a loss on features encodes nothing twice.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.text_encoder import TextEncoder
from models.vision_encoder import VisionEncoder

# Class prompts encoded per text-encoder call when all classes are needed (evaluation,
# frozen text): bounds activation memory at 21K classes.
TEXT_CHUNK_CLASSES = 1000


class CLIPOutputs(NamedTuple):
    """One forward pass: logits and the L2-normalised features they came from (fp32)."""

    logits: torch.Tensor  # [B, n] over the classes asked for
    image_features: torch.Tensor  # [B, E]
    text_features: torch.Tensor  # [n, E], or [B, n, E] when the class text depends on the image


class PromptedCLIP(nn.Module):
    def __init__(self, clip_model, prompt_learner, image_encoder: Optional[VisionEncoder] = None,
                 text_chunk_classes: int = TEXT_CHUNK_CLASSES):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.image_encoder = image_encoder if image_encoder is not None else VisionEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.text_chunk_classes = text_chunk_classes
        self._cached_text_features = None

    def encode_class_prompts(self, class_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised features of the class prompts of ``class_ids`` (all when None), fp32."""
        embeddings, tokenized, hook = self.prompt_learner.text_inputs(class_ids)
        return F.normalize(self.text_encoder(embeddings, tokenized, layer_hook=hook).float(), dim=-1)

    @torch.no_grad()
    def all_text_features(self) -> torch.Tensor:
        """Features of every class, encoded ``text_chunk_classes`` classes at a time."""
        n_cls = self.prompt_learner.n_cls
        device = self.logit_scale.device
        chunks = []
        for start in range(0, n_cls, self.text_chunk_classes):
            ids = torch.arange(start, min(start + self.text_chunk_classes, n_cls), device=device)
            chunks.append(self.encode_class_prompts(ids))
        return torch.cat(chunks)

    def text_features(self, class_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised class features [n, E] for ``class_ids`` (all classes when None).

        Class features do not depend on the image, so without gradients (evaluation) or
        with a frozen text side they are computed once, in chunks, and reused. Learned
        text features are dropped by any forward with gradients (a training step, after
        which the prompts change) and by ``clear_text_feature_cache``; fixed ones are kept
        for the model's lifetime.
        """
        learned = self.prompt_learner.learns_text
        if learned and torch.is_grad_enabled():
            self._cached_text_features = None
            return self.encode_class_prompts(class_ids)
        if self._cached_text_features is None:
            self._cached_text_features = self.all_text_features()
        features = self._cached_text_features
        return features if class_ids is None else features[class_ids]

    def clear_text_feature_cache(self):
        """Forget cached features of learned prompts (they may have changed since); fixed
        class text (VPT, RPP without text prompts) cannot change and stays cached."""
        if self.prompt_learner.learns_text:
            self._cached_text_features = None

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        prompts, hook = self.prompt_learner.vision_inputs()
        features = self.image_encoder(image, layer_hook=hook, prompts=prompts)
        return F.normalize(features.float(), dim=-1)

    def forward(self, image: torch.Tensor, class_ids: Optional[torch.Tensor] = None,
                return_features: bool = False):
        """Logits [B, n] over the classes ``class_ids`` (all classes when None), fp32;
        with ``return_features``, ``CLIPOutputs`` (logits and the features)."""
        image_features = self.image_features(image)
        text_features = self.text_features(class_ids)
        logits = self.logit_scale.exp().float() * image_features @ text_features.t()
        return CLIPOutputs(logits, image_features, text_features) if return_features else logits
