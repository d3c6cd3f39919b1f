"""The frozen zero-shot classifier (ZeroshotCLIP's and the KD teacher's home)."""
import torch
import torch.nn.functional as F

from models import load_clip
from models.zero_shot import ZeroShotClassifier

CLASSNAMES = ["dog", "sea lion", "red striped triangle"]


def test_logits_stay_fp32_under_a_callers_autocast():
    clip_model = load_clip("tiny-vit")
    classifier = ZeroShotClassifier(clip_model, CLASSNAMES, ["a photo of a {}."])
    features = F.normalize(torch.randn(4, classifier.text_features.shape[1],
                                       generator=torch.Generator().manual_seed(0)), dim=-1)
    expected = clip_model.logit_scale.exp().item() * features.double() @ classifier.text_features.double().t()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as RPP's teacher runs under PREC bf16
        logits = classifier.classify(features, torch.tensor([2, 0]))
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits.double(), expected[:, [2, 0]], rtol=1e-5, atol=1e-5)
