"""Classification evaluator (numbers and exact printed block) and compute_accuracy."""
import pytest
import torch

from engine.bundled.config import get_cfg_default
from engine.bundled.evaluation import Classification, build_evaluator
from engine.bundled.metrics import compute_accuracy
from engine.bundled.registry import EVALUATOR_REGISTRY

# Known confusion over 3 classes (10 samples, 7 correct):
#   class 0: 4 samples, 2 right (one predicted 1, one predicted 2); predicted 3 times
#   class 1: 3 samples, 2 right (one predicted 0);                  predicted 3 times
#   class 2: 3 samples, 3 right;                                    predicted 4 times
GT = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 2]
LAB2CNAME = {0: "cat", 1: "dog", 2: "fish"}


def f1(precision, recall):
    return 2 * precision * recall / (precision + recall)


# Hand computation: precision = TP / predicted, recall = TP / actual.
MACRO_F1 = 100 * (f1(2 / 3, 2 / 4) + f1(2 / 3, 2 / 3) + f1(3 / 4, 3 / 3)) / 3  # = 100 * 44/63


def logits_for(pred, num_classes=3):
    return torch.nn.functional.one_hot(torch.tensor(pred), num_classes).float() * 5.0


def make_cfg(tmp_path=None, **test_overrides):
    cfg = get_cfg_default()
    if tmp_path is not None:
        cfg.OUTPUT_DIR = str(tmp_path)
    for key, value in test_overrides.items():
        cfg.TEST[key] = value
    return cfg


def run(evaluator, gt=GT, pred=PRED):
    # Two batches, to check accumulation across process() calls.
    evaluator.process(logits_for(pred[:6]), torch.tensor(gt[:6]))
    evaluator.process(logits_for(pred[6:]), torch.tensor(gt[6:]))
    return evaluator.evaluate()


def test_numbers_and_printed_block(capsys):
    results = run(Classification(make_cfg()))
    assert list(results) == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == pytest.approx(70.0)
    assert results["error_rate"] == pytest.approx(30.0)
    assert results["macro_f1"] == pytest.approx(MACRO_F1)
    assert results["macro_f1"] == pytest.approx(100 * 44 / 63)
    assert capsys.readouterr().out == (
        "=> result\n"
        "* total: 10\n"
        "* correct: 7\n"
        "* accuracy: 70.0%\n"
        "* error: 30.0%\n"
        "* macro_f1: 69.8%\n"
    )


def test_per_class_lines_use_tabs(capsys):
    evaluator = Classification(make_cfg(PER_CLASS_RESULT=True), lab2cname=LAB2CNAME)
    results = run(evaluator)
    assert results["perclass_accuracy"] == pytest.approx((50 + 200 / 3 + 100) / 3)
    out = capsys.readouterr().out
    assert out.split("* macro_f1: 69.8%\n")[1] == (
        "=> per-class result\n"
        "* class: 0 (cat)\ttotal: 4\tcorrect: 2\tacc: 50.0%\n"
        "* class: 1 (dog)\ttotal: 3\tcorrect: 2\tacc: 66.7%\n"
        "* class: 2 (fish)\ttotal: 3\tcorrect: 3\tacc: 100.0%\n"
        "* average: 72.2%\n"
    )


def test_per_class_needs_lab2cname():
    with pytest.raises(ValueError, match="lab2cname"):
        Classification(make_cfg(PER_CLASS_RESULT=True))


def test_thousands_separator_and_one_decimal(capsys):
    evaluator = Classification(make_cfg())
    gt = torch.zeros(1234, dtype=torch.long)
    pred = torch.zeros(1234, dtype=torch.long)
    pred[:355] = 1  # 879 / 1234 = 71.23...% correct
    evaluator.process(logits_for(pred.tolist(), 2), gt)
    evaluator.evaluate()
    out = capsys.readouterr().out
    assert "* total: 1,234\n* correct: 879\n* accuracy: 71.2%\n* error: 28.8%\n" in out


def test_macro_f1_only_counts_labels_present_in_ground_truth():
    evaluator = Classification(make_cfg())
    # Label 2 is predicted once but never occurs: it must not lower the macro average.
    evaluator.process(logits_for([0, 1, 2]), torch.tensor([0, 1, 1]))
    results = evaluator.evaluate()
    expected = 100 * (f1(1, 1) + f1(1, 1 / 2)) / 2
    assert results["macro_f1"] == pytest.approx(expected)


def test_reset_starts_over(capsys):
    evaluator = Classification(make_cfg())
    run(evaluator)
    evaluator.reset()
    evaluator.process(logits_for([1]), torch.tensor([1]))
    assert evaluator.evaluate()["accuracy"] == 100.0
    with pytest.raises(ValueError):
        Classification(make_cfg()).evaluate()


def test_confusion_matrix_is_a_plain_tensor_file(tmp_path, capsys):
    evaluator = Classification(make_cfg(tmp_path, COMPUTE_CMAT=True))
    run(evaluator)
    path = tmp_path / "cmat.pt"
    assert f"Confusion matrix is saved to {path}" in capsys.readouterr().out
    cmat = torch.load(path, weights_only=True)
    assert isinstance(cmat, torch.Tensor) and cmat.shape == (3, 3)
    expected = torch.tensor([[2 / 4, 1 / 4, 1 / 4], [1 / 3, 2 / 3, 0], [0, 0, 1]], dtype=cmat.dtype)
    assert torch.allclose(cmat, expected)


def test_build_evaluator(capsys):
    evaluator = build_evaluator(make_cfg(), lab2cname=LAB2CNAME)
    assert isinstance(evaluator, Classification)
    assert capsys.readouterr().out == "Loading evaluator: Classification\n"
    quiet = make_cfg()
    quiet.VERBOSE = False
    build_evaluator(quiet)
    assert capsys.readouterr().out == ""
    assert "Classification" in EVALUATOR_REGISTRY.registered_names()


def test_build_evaluator_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match=r"do you mean \[Classification\]"):
        build_evaluator(make_cfg(EVALUATOR="Classificaton"))


def test_compute_accuracy_top1_and_topk():
    output = torch.tensor([
        [0.1, 0.7, 0.2],   # label 1: top-1 hit
        [0.5, 0.3, 0.2],   # label 1: second best
        [0.6, 0.3, 0.1],   # label 2: last
        [0.2, 0.2, 0.6],   # label 2: top-1 hit
    ])
    target = torch.tensor([1, 1, 2, 2])
    top1, top2, top3 = compute_accuracy(output, target, topk=(1, 2, 3))
    for acc in (top1, top2, top3):
        assert isinstance(acc, torch.Tensor) and acc.shape == (1,) and acc.dtype == torch.float32
    assert top1.item() == pytest.approx(50.0)
    assert top2.item() == pytest.approx(75.0)
    assert top3.item() == pytest.approx(100.0)
    # Default topk and tuple outputs (the first item holds the logits).
    (acc,) = compute_accuracy((output, "aux"), target)
    assert acc.item() == pytest.approx(50.0)
