"""Knowledge distillation from a frozen zero-shot CLIP: the one KD loss and the teacher.

``kd_loss`` = T^2 * KL(teacher || student) on temperature-softened class probabilities,
averaged over the batch (``batchmean``: the mathematical KL per sample; PromptKD divides
by B * C instead, which only rescales lambda). The T^2 factor keeps the gradient scale
independent of T (Hinton et al.).

The teacher is ``models.zero_shot.ZeroShotClassifier`` with the dataset's hand-crafted
template: its class text features are computed once per run and every step only runs its
frozen image tower without autograd. When the teacher's backbone is the student's, the
already-loaded frozen CLIP is shared rather than loaded twice.
"""
import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * mean over the batch of KL(softmax(teacher / T) || softmax(student / T)), fp32."""
    temperature = float(temperature)
    student_log_prob = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_prob = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student_log_prob, teacher_prob, reduction="batchmean") * temperature ** 2
