"""Class sampling for training on many classes: POMP's local contrast and local correction.

Each training step encodes only the batch's ground-truth classes plus ``K - 1`` negative
classes drawn uniformly without replacement (one negative set shared by the batch), so the
text-encoder cost and memory of a step do not grow with the number of classes ``N``.
For every sample the logits are arranged as [positive, K - 1 negatives]; a sampled
negative that is the sample's own class is masked out.

Local correction: each sampled negative stands in for 1/p classes, p = (K - 1 - dup) /
(N - 1) being the chance that a given wrong class is among the negatives (dup = 1 when
the sample's own class was drawn). Adding the margin m = -log(p) to the negative logits
makes the sampled softmax an estimate of the full one (logQ correction). POMP's released
code uses log base 10; base e is the textbook correction. When K - 1 >= N every class is
a negative, p = 1 and the loss is exactly the full softmax cross-entropy.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.config_errors import ConfigError

MASKED_LOGIT = -1e6  # finite (unlike -inf) so KL/CE stay finite; logits are fp32 here


def check_log_base(log_base) -> float:
    """The margin's log base: 10 as POMP's code, e (2.718281828459045) as the textbook."""
    if isinstance(log_base, bool) or not isinstance(log_base, (int, float)) or log_base <= 1:
        raise ConfigError(
            f"TRAINER.CLASS_SAMPLING.LOG_BASE must be a number > 1 (10 as POMP's code, "
            f"2.718281828459045 for e), got {log_base!r}"
        )
    return float(log_base)


@dataclass
class SampledClasses:
    """One step's sampled classes.

    ``class_ids`` [M]: the distinct classes to encode (batch classes and negatives);
    ``positive_cols`` [B] and ``negative_cols`` [K-1]: their columns in ``class_ids``;
    ``duplicate`` [B, K-1]: negative j is sample b's own class; ``margin`` [B, 1].
    """

    class_ids: torch.Tensor
    positive_cols: torch.Tensor
    negative_cols: torch.Tensor
    duplicate: torch.Tensor
    margin: torch.Tensor

    def arrange(self, logits: torch.Tensor) -> torch.Tensor:
        """[B, K] = [positive, negatives] from logits [B, M] over ``class_ids``; duplicates
        masked. Used for the student and (without margin) the teacher alike."""
        logits = logits.float()
        positive = logits.gather(1, self.positive_cols.unsqueeze(1))
        negatives = logits[:, self.negative_cols].masked_fill(self.duplicate, MASKED_LOGIT)
        return torch.cat([positive, negatives], dim=1)

    def corrected(self, arranged: torch.Tensor) -> torch.Tensor:
        """``arranged`` logits with the local-correction margin added to the negatives."""
        shift = torch.cat([torch.zeros_like(self.margin), self.margin.expand(-1, arranged.shape[1] - 1)], 1)
        return arranged + shift

    def targets(self) -> torch.Tensor:
        """The positive is column 0 for every sample."""
        return torch.zeros(self.positive_cols.shape[0], dtype=torch.long, device=self.positive_cols.device)

    def cross_entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """Sampled-softmax CE from logits [B, M] over ``class_ids`` (fp32)."""
        return F.cross_entropy(self.corrected(self.arrange(logits)), self.targets())


class ClassSampler:
    """Draws the classes of a step: the labels' classes plus ``k - 1`` shared negatives."""

    def __init__(self, num_classes: int, k: int, log_base: float = 10.0, correction: bool = True):
        if num_classes < 2:
            raise ValueError("class sampling needs at least 2 classes")
        if k < 2:
            raise ConfigError(f"TRAINER.CLASS_SAMPLING.K must be at least 2 when sampling is on, got {k}")
        self.num_classes = int(num_classes)
        self.k = int(k)
        self.log_base = check_log_base(log_base)
        self.correction = bool(correction)

    @property
    def num_negatives(self) -> int:
        return min(self.k - 1, self.num_classes)

    def draw_negatives(self, device) -> torch.Tensor:
        """K - 1 distinct classes, uniformly (the global torch RNG, so resume replays it)."""
        return torch.randperm(self.num_classes)[:self.num_negatives].to(device)

    def sample(self, labels: torch.Tensor, negatives: torch.Tensor = None) -> SampledClasses:
        labels = labels.long()
        if negatives is None:
            negatives = self.draw_negatives(labels.device)
        class_ids, inverse = torch.unique(torch.cat([labels, negatives]), return_inverse=True)
        positive_cols = inverse[:labels.shape[0]]
        negative_cols = inverse[labels.shape[0]:]
        duplicate = negatives.unsqueeze(0) == labels.unsqueeze(1)
        if self.correction:
            inclusion = (self.num_negatives - duplicate.sum(1, keepdim=True).float()) / (self.num_classes - 1)
            # 0 only when the single negative is the sample's own class (masked anyway)
            inclusion = inclusion.clamp_min(torch.finfo(torch.float32).tiny)
            margin = -torch.log(inclusion) / math.log(self.log_base)
        else:
            margin = torch.zeros(labels.shape[0], 1, device=labels.device)
        return SampledClasses(class_ids, positive_cols, negative_cols, duplicate, margin)


def class_sampler_from_cfg(cfg, num_classes):
    """The sampler ``TRAINER.CLASS_SAMPLING`` asks for, or None when K is 0 (off)."""
    opts = cfg.TRAINER.CLASS_SAMPLING
    if int(opts.K) <= 0:
        return None
    return ClassSampler(num_classes, int(opts.K), opts.LOG_BASE, opts.CORRECTION)
