"""Linear-probe CLIP (CoOp's ``lpclip/`` baseline): logistic regression on frozen CLIP
image features, its inverse regularisation C chosen on the few-shot val split.

What CoOp's ``lpclip/feat_extractor.py`` and ``linear_probe.py`` do, and we do too:

* features are ``clip_model.visual(image)`` (the projected image embedding, **not**
  L2-normalised) of every split, all taken with the *test* transform (resize, centre
  crop, normalise: no augmentation, also for train);
* scikit-learn ``LogisticRegression(solver="lbfgs", max_iter=1000, C=C)`` with its L2
  penalty and every other setting at its default (no ``random_state``: lbfgs is
  deterministic);
* C is searched on val: first the coarse grid 1e6, 1e4, ..., 1e-6 (in that order; the
  first best wins ties), then, around the best value ``c``, 8 steps of a bisection in
  log10 space starting from ``[c / 10, c * 10]``: fit both ends, keep the end with the
  higher val accuracy (the left one on a tie) and halve the interval towards it. The
  deployed classifier is the one fitted at the end kept in the last step;
* val has ``min(shots, 4)`` images per class (CoOp's few-shot val; for ImageNet, whose
  val is its test set, we draw them from it as lpclip does);
* test accuracy is that classifier's on the whole test set.

Where we differ, on purpose: the few-shot train/val images are the dataset's own
few-shot split for the run's seed (the images every other trainer of this toolbox sees
for that seed, drawn as Dassl draws them), not lpclip's own numpy draw from the full
splits; the backbone is the configured one (lpclip hard-codes RN50); features are taken
with the configured PREC (lpclip: CLIP's fp16 weights on the GPU); and the result is
one seed per run, averaged over runs by ``tools/parse_results.py``.

The fitted classifier (weight, bias and the chosen C) is this trainer's only
checkpoint, so ``--eval-only --model-dir`` and ``--resume`` deploy it without a refit.
"""
import random
import warnings

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine import TRAINER_REGISTRY
from engine.bundled.data.data_manager import build_data_loader
from engine.distributed import gather_predictions, is_distributed
from engine.user_errors import UserError
from trainers.clip_trainer import ClipTrainer


class LinearProbeConfigError(UserError):
    """A TRAINER.LINEAR_PROBE value or a dataset the linear probe cannot use."""


class NoFittedClassifier(UserError):
    """Evaluation asked for before any classifier was fitted or loaded."""


def fit_logistic_regression(features, labels, C, max_iter):
    """lpclip's classifier: scikit-learn's L2 logistic regression, lbfgs, defaults otherwise.

    lbfgs stopping at ``max_iter`` is expected at large C (nearly separable few-shot
    features); the caller reports it on the fit's log line instead of a warning per fit.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(solver="lbfgs", max_iter=max_iter, C=C).fit(features, labels)


def stopped_at_max_iter(classifier):
    return int(np.max(classifier.n_iter_)) >= classifier.max_iter


def accuracy(classifier, features, labels):
    return float(np.sum(classifier.predict(features) == labels)) / len(labels)


def search_inverse_regularisation(val_accuracy, coarse_grid, steps):
    """lpclip's search for C; ``val_accuracy(C)`` fits at C and scores on val.

    Returns ``(C, trace)``: the C of the classifier to deploy and the list of
    ``(C, val accuracy)`` in the order they were asked for.
    """
    trace = []

    def score(c):
        acc = val_accuracy(c)
        trace.append((c, acc))
        return acc

    coarse = [score(c) for c in coarse_grid]
    chosen = coarse_grid[int(np.argmax(coarse))]
    left, right = 1e-1 * chosen, 1e1 * chosen
    for _ in range(steps):
        acc_left, acc_right = score(left), score(right)
        middle = 0.5 * (np.log10(right) + np.log10(left))
        if acc_left < acc_right:
            chosen, (left, right) = right, (middle, np.log10(right))
        else:
            chosen, (left, right) = left, (np.log10(left), middle)
        left, right = np.power(10, left), np.power(10, right)
    return float(chosen), trace


class LinearProbeHead(nn.Module):
    """The fitted classifier as buffers (float64, as scikit-learn fits it): logits are
    ``features @ weight.T + bias``; ``C`` is NaN until a classifier is fitted or loaded."""

    def __init__(self, feature_dim, num_classes):
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_classes, feature_dim, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("C", torch.tensor(float("nan"), dtype=torch.float64))

    @property
    def fitted(self):
        return not torch.isnan(self.C).item()

    def set_classifier(self, classifier, num_classes):
        """Copy a fitted LogisticRegression in, one row per class label 0..n-1."""
        classes = classifier.classes_.tolist()
        if classes != list(range(num_classes)):
            missing = sorted(set(range(num_classes)) - set(classes))
            raise LinearProbeConfigError(
                f"the training split has no image of class(es) {missing[:5]}: the linear "
                "probe needs every class in it"
            )
        weight = torch.from_numpy(classifier.coef_).double()
        bias = torch.from_numpy(classifier.intercept_).double()
        if num_classes == 2:
            # One decision value s for class 1; logits (-s/2, s/2) rank the classes as
            # scikit-learn's predict does (class 1 iff s > 0).
            weight, bias = torch.cat([-weight / 2, weight / 2]), torch.cat([-bias / 2, bias / 2])
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias)
            self.C.fill_(float(classifier.C))

    def forward(self, features):
        return features.double() @ self.weight.t() + self.bias


@TRAINER_REGISTRY.register()
class LinearProbeCLIP(ClipTrainer):
    """CoOp's linear-probe baseline (its scripts call it lpclip); fits, never trains by SGD."""

    config_node = "LINEAR_PROBE"
    config_keys = {
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16, for feature extraction
        # Coarse values of C, tried in this order (the first best wins a tie).
        "C_GRID": [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6],
        # Bisection steps in log10(C) after the coarse grid (lpclip: 8; 0 deploys the
        # grid's best value, where lpclip would fail).
        "SEARCH_STEPS": 8,
        "MAX_ITER": 1000,  # lbfgs iterations per fit
    }

    def build_model(self):
        opts = self.options(self.cfg)
        self.coarse_grid = checked_grid(opts.C_GRID)
        self.search_steps = checked_int("SEARCH_STEPS", opts.SEARCH_STEPS, minimum=0)
        self.max_iter = checked_int("MAX_ITER", opts.MAX_ITER, minimum=1)
        # Not a registered model: checkpoints hold only the classifier, never CLIP.
        self.clip_model = self.load_frozen_clip()
        self.model = LinearProbeHead(self.clip_model.visual.output_dim, self.num_classes)
        self.model.to(self.device)
        self.register_model("linear_probe", self.model)

    @torch.no_grad()
    def image_features(self, images):
        with self.autocast():
            return self.clip_model.encode_image(images).float()

    def model_inference(self, images):
        return self.model(self.image_features(images))

    def train(self):
        """Extract features, search C on val, fit, save; then Dassl's after_train (test)."""
        self.start_epoch, self.max_epoch, self.epoch = 0, 1, 0
        self.before_train()  # resumes from cfg.RESUME only
        if self.start_epoch >= self.max_epoch:
            print(f"Deploying the classifier of the resumed run (C = {self.model.C.item():g})")
        else:
            val_accuracy = self.fit()
            self.save_model(0, self.output_dir, is_best=True, val_result=100 * val_accuracy)
        self.after_train()

    def fit(self):
        """Search C on val, copy the chosen classifier into the head; its val accuracy."""
        train_x, train_y = self.extract_features(self.dm.dataset.train_x, "train")
        val_x, val_y = self.extract_features(self.few_shot_val(), "val")
        print(f"Searching C on val: {len(self.coarse_grid)} grid values, then "
              f"{self.search_steps} bisection steps (lbfgs, max_iter {self.max_iter})")
        fits = {}  # C -> (classifier, val accuracy); lbfgs refits at the same C are identical

        def val_accuracy(c):
            if c not in fits:
                classifier = fit_logistic_regression(train_x, train_y, c, self.max_iter)
                fits[c] = (classifier, accuracy(classifier, val_x, val_y))
                note = " (lbfgs stopped at max_iter)" if stopped_at_max_iter(classifier) else ""
                print(f"  C = {c:.6g}: val accuracy {100 * fits[c][1]:.2f}%{note}")
            return fits[c][1]

        chosen, _ = search_inverse_regularisation(val_accuracy, self.coarse_grid, self.search_steps)
        classifier, val_acc = fits[chosen]
        print(f"Chosen C = {chosen:.6g} (val accuracy {100 * val_acc:.2f}%, train accuracy "
              f"{100 * accuracy(classifier, train_x, train_y):.2f}%)")
        self.model.set_classifier(classifier, self.num_classes)
        return val_acc

    def few_shot_val(self):
        """The val split with at most min(shots, 4) images per class, as lpclip uses it.

        Dataset classes already give CoOp's few-shot val; ImageNet's val is its whole
        test set, from which lpclip also draws min(shots, 4) per class.
        """
        from datasets.fewshot import group_by_label, sample_few_shot, val_shots

        val = list(self.dm.dataset.val or [])
        if not val:
            raise LinearProbeConfigError(
                f"dataset {self.cfg.DATASET.NAME} has no val split to choose C on")
        shots = int(self.cfg.DATASET.NUM_SHOTS)
        if shots >= 1 and any(len(g) > val_shots(shots) for g in group_by_label(val)):
            val = sample_few_shot(val, val_shots(shots), random.Random(self.cfg.SEED))
            print(f"Drew {val_shots(shots)} val image(s) per class from the val split "
                  f"({len(val)} images)")
        return val

    @torch.no_grad()
    def extract_features(self, items, split):
        """(features float64 [N, D], labels [N]) as NumPy arrays, in item order, taken with
        the test transform; in multi-process runs each rank extracts a shard and all
        ranks get every feature."""
        test_transform = self.test_loader.dataset.transform  # what test() applies
        loader = build_data_loader(
            self.cfg, sampler_type="SequentialSampler", data_source=items,
            batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE, tfm=test_transform, is_train=False,
        )
        print(f"Extracting {split} features of {len(items):,} images (test transform)")
        indices, features, labels = [], [], []
        for batch in tqdm(loader):
            features.append(self.image_features(batch["img"].to(self.device)).cpu())
            labels.append(torch.as_tensor(batch["label"]))
            indices.append(torch.as_tensor(batch["index"]))
        features, labels = torch.cat(features), torch.cat(labels)
        if is_distributed():
            _, features, labels = gather_predictions(torch.cat(indices), features, labels)
        return features.double().numpy(), labels.numpy()

    def test(self, split=None):
        if not self.model.fitted:
            raise NoFittedClassifier(
                "LinearProbeCLIP has no fitted classifier to evaluate: train it, or pass "
                "--model-dir with the output folder of a LinearProbeCLIP run"
            )
        return super().test(split)


def checked_grid(values):
    """TRAINER.LINEAR_PROBE.C_GRID as positive floats ("1e6" from YAML counts too)."""
    try:
        grid = [float(v) for v in values]
    except (TypeError, ValueError):
        grid = []
    if not grid or not all(np.isfinite(c) and c > 0 for c in grid):
        raise LinearProbeConfigError(
            f"TRAINER.LINEAR_PROBE.C_GRID must be a non-empty list of positive numbers, got "
            f"{list(values) if isinstance(values, (list, tuple)) else values!r}"
        )
    return grid


def checked_int(key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LinearProbeConfigError(
            f"TRAINER.LINEAR_PROBE.{key} must be an integer >= {minimum}, got {value!r}")
    return value
