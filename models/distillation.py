"""Knowledge distillation from a frozen zero-shot CLIP: the one KD loss and the teacher.

``kd_loss`` = T^2 * KL(teacher || student) on temperature-softened class probabilities,
averaged over the batch (``batchmean``: the mathematical KL per sample; PromptKD divides
by B * C instead, which only rescales lambda). The T^2 factor keeps the gradient scale
independent of T (Hinton et al.).

``ZeroShotTeacher`` is CLIP with a hand-crafted template per dataset. Its class text
features for the training classes are computed once, at construction, and cached (the
teacher never changes); every step only runs its frozen image tower without autograd.
When the teacher's backbone is the student's, the already-loaded frozen CLIP is shared
rather than loaded twice.
"""
import torch
import torch.nn.functional as F
from torch import nn

from models.text_encoder import TextEncoder


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * mean over the batch of KL(softmax(teacher / T) || softmax(student / T)), fp32."""
    temperature = float(temperature)
    student_log_prob = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_prob = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student_log_prob, teacher_prob, reduction="batchmean") * temperature ** 2


class ZeroShotTeacher(nn.Module):
    """Frozen CLIP scoring images against ``template.format(class name)`` for every class."""

    def __init__(self, clip_model, classnames, template: str, text_chunk: int = 1000):
        super().__init__()
        self.clip_model = clip_model
        for param in clip_model.parameters():
            param.requires_grad_(False)
        self.template = template
        self.text_feature_computations = 0  # what tests count: must stay 1 per run
        self.register_buffer("text_features", self._encode_classes(classnames, text_chunk), persistent=False)

    @torch.no_grad()
    def _encode_classes(self, classnames, text_chunk):
        self.text_feature_computations += 1
        texts = [self.template.format(name) for name in classnames]
        features = TextEncoder(self.clip_model).encode_texts(texts, batch_size=text_chunk)
        return F.normalize(features.float(), dim=-1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, class_ids=None) -> torch.Tensor:
        """Teacher logits [B, n] (fp32) over ``class_ids`` (all training classes when None)."""
        image_features = self.clip_model.encode_image(images)
        image_features = F.normalize(image_features.float(), dim=-1)
        text = self.text_features if class_ids is None else self.text_features[class_ids]
        return self.clip_model.logit_scale.exp().float() * image_features @ text.t()
