"""Zero-shot CLIP as a classifier: hand-written class prompts, their features encoded once.

One home for what ZeroshotCLIP evaluates with and what RPP distils from (its KD
teacher): class text features averaged over templates, computed once per run (the model
never changes) and cached; every call then only runs the frozen image tower, without
autograd, and ``classify`` does not even run that when the caller already has the frozen
tower's image features (RPP's student without vision prompts).
"""
import torch
import torch.nn.functional as F
from torch import nn

from models.text_encoder import TextEncoder


@torch.no_grad()
def class_text_features(clip_model, classnames, templates, batch_size=1000, normalize_each=True):
    """L2-normalised class features [C, E]: each template's features normalised, averaged
    over the templates, normalised again (CoOp's ZeroshotCLIP2 ensemble for several).
    ``normalize_each=False`` averages the raw features instead (PromptSRC's ensemble)."""
    # Every template x class text in one list: chunks of batch_size whatever the number of
    # classes (one small call per template is many times slower for few classes).
    texts = [template.format(name) for template in templates for name in classnames]
    features = TextEncoder(clip_model).encode_texts(texts, batch_size=batch_size).float()
    per_template = features.reshape(len(templates), len(classnames), -1)
    if normalize_each:
        per_template = F.normalize(per_template, dim=-1)
    return F.normalize(per_template.mean(dim=0), dim=-1)


class ZeroShotClassifier(nn.Module):
    """Frozen CLIP scoring images against ``templates`` x class names."""

    def __init__(self, clip_model, classnames, templates, normalize_each=True):
        super().__init__()
        self.clip_model = clip_model
        for param in clip_model.parameters():
            param.requires_grad_(False)
        self.templates = list(templates)
        self.register_buffer("text_features", class_text_features(
            clip_model, classnames, self.templates, normalize_each=normalize_each),
                             persistent=False)

    @torch.no_grad()
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised frozen image features [B, E] (fp32)."""
        return F.normalize(self.clip_model.encode_image(images).float(), dim=-1)

    def class_features(self, class_ids=None) -> torch.Tensor:
        """Normalised class text features [n, E] (fp32) of ``class_ids`` (all when None)."""
        return self.text_features if class_ids is None else self.text_features[class_ids]

    @torch.no_grad()
    def classify(self, image_features: torch.Tensor, class_ids=None) -> torch.Tensor:
        """Logits [B, n] (fp32) of normalised image features over ``class_ids`` (all when None)."""
        text = self.class_features(class_ids)
        # fp32 under a caller's autocast too (the teacher's image pass runs in it): logits
        # and the losses on them are fp32 whatever PREC says
        with torch.autocast(image_features.device.type, enabled=False):
            return self.clip_model.logit_scale.exp().float() * image_features.float() @ text.t()

    def forward(self, images: torch.Tensor, class_ids=None) -> torch.Tensor:
        """Logits [B, n] (fp32) over ``class_ids`` (all classes when None)."""
        return self.classify(self.image_features(images), class_ids)
