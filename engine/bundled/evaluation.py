"""Evaluators: accumulate predictions over a test loop, then print and return metrics.

The printed block is parsed by CoOp's ``parse_test_res.py`` (it looks for a line
``=> result`` and then ``* accuracy: X%``), so its wording is a contract.
"""
import os
import os.path as osp
from collections import OrderedDict, defaultdict

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from engine.distributed import is_main_process

from .registry import EVALUATOR_REGISTRY, check_availability


class EvaluatorBase:
    """Interface: ``reset()``, ``process(model_output, ground_truth)``, ``evaluate()``."""

    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accuracy, error rate and macro-F1 (plus per-class accuracy / confusion matrix)."""

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._per_class = cfg.TEST.PER_CLASS_RESULT
        if self._per_class and lab2cname is None:
            raise ValueError("TEST.PER_CLASS_RESULT needs lab2cname (label -> class name)")
        self.reset()

    def reset(self):
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        self._matches_by_label = defaultdict(list) if self._per_class else None

    def process(self, mo, gt):
        """``mo``: [N, C] scores; ``gt``: [N] integer labels."""
        pred = mo.max(1)[1]
        matches = pred.eq(gt).int()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.detach().cpu().tolist())
        self._y_pred.extend(pred.detach().cpu().tolist())
        if self._per_class:
            for label, hit in zip(gt.detach().cpu().tolist(), matches.cpu().tolist()):
                self._matches_by_label[label].append(hit)

    def evaluate(self):
        if self._total == 0:
            raise ValueError("Classification.evaluate() called before any process() call")
        results = OrderedDict()
        acc = 100.0 * self._correct / self._total
        # Only labels that occur in the ground truth count towards the macro average;
        # a class never predicted scores F1 = 0 (zero_division=0 only silences the warning).
        macro_f1 = 100.0 * f1_score(
            self._y_true, self._y_pred, average="macro",
            labels=np.unique(self._y_true), zero_division=0,
        )
        results["accuracy"] = acc
        results["error_rate"] = 100.0 - acc
        results["macro_f1"] = macro_f1
        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {100.0 - acc:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )
        if self._per_class:
            results["perclass_accuracy"] = self._report_per_class()
        if self.cfg.TEST.COMPUTE_CMAT and is_main_process():  # every rank has the same one
            self._save_confusion_matrix()
        return results

    def _report_per_class(self):
        print("=> per-class result")
        accuracies = []
        for label in sorted(self._matches_by_label):
            hits = self._matches_by_label[label]
            n, correct = len(hits), sum(hits)
            acc = 100.0 * correct / n
            accuracies.append(acc)
            classname = self._lab2cname[label]
            print(
                f"* class: {label} ({classname})\t"
                f"total: {n:,}\tcorrect: {correct:,}\tacc: {acc:.1f}%"
            )
        mean_acc = np.mean(accuracies)
        print(f"* average: {mean_acc:.1f}%")
        return mean_acc

    def _save_confusion_matrix(self):
        cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
        os.makedirs(self.cfg.OUTPUT_DIR, exist_ok=True)
        save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
        # A plain tensor (not a numpy array) so torch.load(weights_only=True) reads it.
        torch.save(torch.from_numpy(cmat), save_path)
        print(f"Confusion matrix is saved to {save_path}")


def build_evaluator(cfg, **kwargs):
    """Instantiate ``cfg.TEST.EVALUATOR`` (kwargs such as ``lab2cname`` are passed on)."""
    name = cfg.TEST.EVALUATOR
    check_availability(name, EVALUATOR_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading evaluator: {name}")
    return EVALUATOR_REGISTRY.get(name)(cfg, **kwargs)
