"""POMP's local contrast and local correction (models/class_sampling.py) and the KD loss."""
import math

import pytest
import torch
import torch.nn.functional as F

from models.class_sampling import MASKED_LOGIT, ClassSampler, check_log_base
from models.distillation import kd_loss


def test_sampled_logits_mask_and_margin_by_hand():
    # N = 10 classes, K = 4: 3 negatives shared by the batch; sample 0's class (7) is drawn.
    sampler = ClassSampler(num_classes=10, k=4, log_base=10.0)
    labels = torch.tensor([7, 2])
    negatives = torch.tensor([7, 0, 5])
    sampled = sampler.sample(labels, negatives)

    assert sampled.class_ids.tolist() == [0, 2, 5, 7]  # what the text encoder sees
    full = torch.arange(20, dtype=torch.float32).reshape(2, 10)  # logits over all classes
    over_ids = full[:, sampled.class_ids]
    arranged = sampled.arrange(over_ids)
    assert arranged.tolist() == [[7.0, MASKED_LOGIT, 0.0, 5.0], [12.0, 17.0, 10.0, 15.0]]

    # p = (K - 1 - dup) / (N - 1): sample 0 has one duplicate, sample 1 none
    margin0, margin1 = -math.log10(2 / 9), -math.log10(3 / 9)
    assert sampled.margin.squeeze(1).tolist() == pytest.approx([margin0, margin1])
    corrected = sampled.corrected(arranged)
    assert corrected[0].tolist() == pytest.approx([7.0, MASKED_LOGIT + margin0, margin0, 5.0 + margin0])
    assert corrected[1].tolist() == pytest.approx([12.0, 17.0 + margin1, 10.0 + margin1, 15.0 + margin1])

    expected = torch.stack([
        -torch.log_softmax(torch.tensor([7.0, margin0, 5.0 + margin0]), 0)[0],
        -torch.log_softmax(torch.tensor([12.0, 17.0 + margin1, 10.0 + margin1, 15.0 + margin1]), 0)[0],
    ]).mean()
    assert sampled.cross_entropy(over_ids).item() == pytest.approx(expected.item(), rel=1e-5)


def test_log_base_e_and_correction_off():
    labels, negatives = torch.tensor([1]), torch.tensor([3, 4])
    natural = ClassSampler(100, 3, log_base=math.e).sample(labels, negatives)
    assert natural.margin.item() == pytest.approx(-math.log(2 / 99))
    plain = ClassSampler(100, 3, correction=False).sample(labels, negatives)
    assert plain.margin.item() == 0.0


def test_sampling_every_class_is_the_full_softmax():
    torch.manual_seed(0)
    logits = torch.randn(5, 6)
    labels = torch.tensor([0, 5, 2, 2, 3])
    sampled = ClassSampler(num_classes=6, k=50).sample(labels)  # K - 1 >= N: all classes
    assert sampled.class_ids.tolist() == list(range(6))
    assert torch.all(sampled.margin == 0)
    assert sampled.cross_entropy(logits).item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


def test_negatives_are_distinct_uniform_and_follow_the_global_seed():
    sampler = ClassSampler(num_classes=50, k=11)
    torch.manual_seed(3)
    first = sampler.sample(torch.tensor([4, 9]))
    torch.manual_seed(3)
    again = sampler.sample(torch.tensor([4, 9]))
    negatives = first.class_ids[first.negative_cols]
    assert len(set(negatives.tolist())) == 10
    assert torch.equal(negatives, again.class_ids[again.negative_cols])
    counts = torch.zeros(50)
    for _ in range(500):
        picked = sampler.sample(torch.tensor([0]))
        counts[picked.class_ids[picked.negative_cols]] += 1
    assert counts.sum() == 5000 and counts.min() > 50 and counts.max() < 170  # ~100 each


def test_bad_sampling_settings_fail_clearly():
    with pytest.raises(ValueError, match="LOG_BASE"):
        check_log_base(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        ClassSampler(10, 1)


def test_kd_loss_is_t_squared_kl_teacher_student():
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 7), torch.randn(4, 7)
    for temperature in (1.0, 2.0):
        p_t = torch.softmax(teacher / temperature, dim=1)
        p_s = torch.softmax(student / temperature, dim=1)
        kl = (p_t * (p_t.log() - p_s.log())).sum(dim=1).mean()
        expected = temperature ** 2 * kl
        assert kd_loss(student, teacher, temperature).item() == pytest.approx(expected.item(), rel=1e-5)
    assert kd_loss(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-5)


def test_kd_loss_ignores_masked_columns():
    student = torch.tensor([[1.0, 2.0, MASKED_LOGIT, 0.5]])
    teacher = torch.tensor([[0.3, 1.0, MASKED_LOGIT, 2.0]])
    kept = [0, 1, 3]
    assert kd_loss(student, teacher).item() == pytest.approx(
        kd_loss(student[:, kept], teacher[:, kept]).item(), rel=1e-5)
