"""LinearProbeCLIP: CoOp's lpclip protocol (C searched on val, scikit-learn logistic regression).

The search is checked against a hand-worked accuracy curve and against an independent
log-space bisection that fits scikit-learn directly; the trainer's features against
CLIP run on images transformed here (resize + centre crop + normalise, no augmentation,
no L2 normalisation); the sweep, the parser, eval-only and --resume on the demo data.
"""
import csv
import io
import math
import os
import random
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from torchvision import transforms

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT

LP_TINY_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "LinearProbeCLIP", "tiny_vit.yaml")
LPCLIP_GRID = [1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6]  # lpclip/linear_probe.py search_list
ACCURACY = re.compile(r"^\* accuracy: ([\d.]+)%$", re.M)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# A small search so a demo run takes seconds: peak of {1, 0.01}, then two steps.
QUICK_SEARCH = ["TRAINER.LINEAR_PROBE.C_GRID", "[1.0, 0.01]", "TRAINER.LINEAR_PROBE.SEARCH_STEPS", "2",
                "TRAINER.LINEAR_PROBE.MAX_ITER", "200"]


@pytest.fixture(autouse=True)
def one_blas_thread():
    """These fits are tiny: several BLAS threads only add contention on a busy machine."""
    with threadpool_limits(limits=1):
        yield


def sklearn_fit(features, labels, c, max_iter=1000):
    return LogisticRegression(solver="lbfgs", max_iter=max_iter, C=c).fit(features, labels)


def bisection_in_log10(score, grid, steps):
    """lpclip's search restated on exponents: best grid value (first on ties), then
    [e - 1, e + 1] halved ``steps`` times towards the better end (left on ties)."""
    coarse = [score(c) for c in grid]
    best = grid[coarse.index(max(coarse))]
    low, high = math.log10(best) - 1, math.log10(best) + 1
    chosen = best
    for _ in range(steps):
        middle = (low + high) / 2
        if score(10 ** high) > score(10 ** low):
            chosen, low = 10 ** high, middle
        else:
            chosen, high = 10 ** low, middle
    return chosen


def overlapping_classes(centres, per_class, rng, spread=1.6):
    """``per_class`` noisy points around each class centre: classes that overlap, so C matters."""
    labels = np.repeat(np.arange(len(centres)), per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), centres.shape[1])), labels


# ---------------------------------------------------------------- the search for C

def test_search_walks_a_known_accuracy_curve_as_lpclip_does():
    from trainers.linear_probe import search_inverse_regularisation

    asked = []

    def val_accuracy(c):  # peaks at C = 10^2.3
        asked.append(c)
        return -abs(math.log10(c) - 2.3)

    chosen, trace = search_inverse_regularisation(val_accuracy, LPCLIP_GRID, steps=8)
    # Grid best: 1e2. Then, in log10 C (left vs right -> kept end; next interval):
    # 1 vs 3 -> 3; [2, 3]   2 vs 3 -> 2; [2, 2.5]   2 vs 2.5 -> 2.5; [2.25, 2.5]
    # 2.25 vs 2.5 -> 2.25; [2.25, 2.375]   2.25 vs 2.375 -> 2.25; [2.25, 2.3125]
    # 2.25 vs 2.3125 -> 2.3125; [2.28125, 2.3125]   2.28125 vs 2.3125 -> 2.3125;
    # [2.296875, 2.3125]   2.296875 vs 2.3125 -> 2.296875 (0.003125 from the peak vs 0.0125)
    assert chosen == pytest.approx(10 ** 2.296875, rel=1e-12)
    assert asked[:7] == LPCLIP_GRID
    steps = [(math.log10(a), math.log10(b)) for a, b in zip(asked[7::2], asked[8::2])]
    assert steps == pytest.approx([(1, 3), (2, 3), (2, 2.5), (2.25, 2.5), (2.25, 2.375),
                                   (2.25, 2.3125), (2.28125, 2.3125), (2.296875, 2.3125)])
    assert [c for c, _ in trace] == asked


def test_ties_keep_the_first_grid_value_and_the_left_end():
    from trainers.linear_probe import search_inverse_regularisation

    chosen, trace = search_inverse_regularisation(lambda c: 0.5, LPCLIP_GRID, steps=8)
    # 1e6 wins the grid (first of equals); every step keeps the left end, 1e5.
    assert chosen == pytest.approx(1e5, rel=1e-12)
    assert trace[7][0] == pytest.approx(1e5) and trace[8][0] == pytest.approx(1e7)
    assert search_inverse_regularisation(lambda c: 0.5, [1e2, 1.0], steps=0)[0] == 1e2


def test_search_on_features_picks_what_a_direct_sklearn_search_picks():
    from trainers.linear_probe import (
        LinearProbeHead, accuracy, fit_logistic_regression, search_inverse_regularisation,
    )

    rng = np.random.default_rng(7)
    centres = rng.normal(size=(5, 8))
    train_x, train_y = overlapping_classes(centres, 6, rng)
    val_x, val_y = overlapping_classes(centres, 4, rng)
    test_x, test_y = overlapping_classes(centres, 40, rng)

    def direct_score(c):
        return float(np.mean(sklearn_fit(train_x, train_y, c).predict(val_x) == val_y))

    def trainer_score(c):
        return accuracy(fit_logistic_regression(train_x, train_y, c, 1000), val_x, val_y)

    assert len({direct_score(c) for c in LPCLIP_GRID}) > 1, "C must matter on these features"
    chosen, _ = search_inverse_regularisation(trainer_score, LPCLIP_GRID, steps=8)
    assert chosen == pytest.approx(bisection_in_log10(direct_score, LPCLIP_GRID, 8), rel=1e-9)

    direct = sklearn_fit(train_x, train_y, chosen)
    head = LinearProbeHead(8, 5)
    head.set_classifier(fit_logistic_regression(train_x, train_y, chosen, 1000), 5)
    logits = head(torch.from_numpy(test_x))
    assert torch.equal(logits.argmax(1), torch.from_numpy(direct.predict(test_x)))
    np.testing.assert_allclose(logits.numpy(), direct.decision_function(test_x), rtol=1e-6, atol=1e-6)
    assert head.C.item() == chosen


def test_two_classes_rank_as_sklearn_predicts():
    from trainers.linear_probe import LinearProbeHead

    rng = np.random.default_rng(3)
    x, y = overlapping_classes(rng.normal(size=(2, 6)), 30, rng, spread=2.0)
    classifier = sklearn_fit(x, y, 1.0)
    head = LinearProbeHead(6, 2)
    head.set_classifier(classifier, 2)
    logits = head(torch.from_numpy(x))
    assert torch.equal(logits.argmax(1), torch.from_numpy(classifier.predict(x)))
    np.testing.assert_allclose((logits[:, 1] - logits[:, 0]).numpy(), classifier.decision_function(x),
                               rtol=1e-9, atol=1e-9)
    assert 0 < (classifier.predict(x) == y).mean() < 1, "the classes should overlap"


# ---------------------------------------------------------------- the trainer on the demo data

def features_of(trainer, items):
    """CLIP image features of ``items`` transformed here: Dassl's test transform for 32 px."""
    transform = transforms.Compose([
        transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(32), transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    images = torch.stack([transform(Image.open(item.impath).convert("RGB")) for item in items])
    with torch.no_grad():
        return trainer.clip_model.encode_image(images).double().numpy()


def test_trainer_fits_test_transform_features_and_deploys_the_chosen_classifier(make_cfg):
    from engine import build_trainer

    cfg = make_cfg("LinearProbeCLIP", "DATASET.NUM_SHOTS", 2, *QUICK_SEARCH, config_file=LP_TINY_CONFIG)
    trainer = build_trainer(cfg)
    dataset = trainer.dm.dataset
    train_x = features_of(trainer, dataset.train_x)
    train_y = np.array([item.label for item in dataset.train_x])
    extracted, labels = trainer.extract_features(dataset.train_x, "train")
    np.testing.assert_allclose(extracted, train_x, rtol=1e-5, atol=1e-5 * np.abs(train_x).max())
    assert np.array_equal(labels, train_y)

    val_x = features_of(trainer, dataset.val)
    val_y = np.array([item.label for item in dataset.val])
    assert len(val_y) == 2 * trainer.num_classes  # min(2 shots, 4) per class

    val_acc = trainer.fit()

    def direct_score(c):
        return float(np.mean(sklearn_fit(train_x, train_y, c, 200).predict(val_x) == val_y))

    expected_c = bisection_in_log10(direct_score, [1.0, 0.01], 2)
    assert trainer.model.C.item() == pytest.approx(expected_c, rel=1e-9)
    assert val_acc == pytest.approx(direct_score(expected_c))

    direct = sklearn_fit(train_x, train_y, expected_c, 200)
    test_x = features_of(trainer, dataset.test)
    test_y = np.array([item.label for item in dataset.test])
    assert trainer.test() == pytest.approx(100 * np.mean(direct.predict(test_x) == test_y))

    # ImageNet's val is its whole test set: lpclip draws min(shots, 4) per class from it,
    # here as Dassl draws few-shot data (per class in order of first appearance).
    trainer.dm.dataset = SimpleNamespace(val=list(dataset.test))
    per_class = {}
    for item in dataset.test:
        per_class.setdefault(item.label, []).append(item)
    rng = random.Random(1)
    expected = [item for group in per_class.values() for item in rng.sample(group, 2)]
    assert [item.impath for item in trainer.few_shot_val()] == [item.impath for item in expected]


def test_bad_search_settings_and_a_missing_classifier_are_one_line_errors(demo_data_root, tmp_path, capsys):
    from engine.launch import main

    common = ["--root", demo_data_root, "--trainer", "LinearProbeCLIP", "--seed", "1",
              "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", LP_TINY_CONFIG]
    for key, value in (("C_GRID", "[1.0, -2.0]"), ("C_GRID", "[]"), ("SEARCH_STEPS", "-1"),
                       ("MAX_ITER", "0")):
        code = main([*common, "--output-dir", str(tmp_path / key), f"TRAINER.LINEAR_PROBE.{key}", value])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and f"TRAINER.LINEAR_PROBE.{key}" in err, err
        assert len(err.strip().splitlines()) == 1

    code = main([*common, "--output-dir", str(tmp_path / "eval"), "--eval-only"])
    err = capsys.readouterr().err
    assert code == 2 and "no fitted classifier" in err and "--model-dir" in err, err


# ---------------------------------------------------------------- sweep, parser, eval-only, resume

def run_sweep(data_root, output, *opts):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", DATA=data_root,
               OUTPUT=output, CFG="tiny_vit", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "lpclip", "few_shot.sh"),
                           "demo", "2", "1", *opts], cwd="/", env=env, capture_output=True,
                          text=True, timeout=600)


def final_accuracy(log_text):
    assert "Finish training" in log_text
    return float(ACCURACY.findall(log_text.split("Finish training")[-1])[-1])


@pytest.mark.slow
def test_sweep_parser_eval_only_and_resume_agree(demo_data_root, tmp_path, capsys, restore_stdout):
    from engine.launch import build_arg_parser, run
    from tools import parse_results

    output = str(tmp_path / "output")
    swept = run_sweep(demo_data_root, output, *QUICK_SEARCH)
    assert swept.returncode == 0, swept.stderr[-3000:]
    run_dir = os.path.join(output, "demo", "LinearProbeCLIP", "tiny_vit_2shots", "seed1")
    log = open(os.path.join(run_dir, "log.txt")).read()
    accuracy = final_accuracy(log)
    chosen = float(re.search(r"^Chosen C = (\S+) ", log, re.M).group(1))

    checkpoint = torch.load(os.path.join(run_dir, "linear_probe", "model-best.pth.tar"), weights_only=True)
    state = checkpoint["state_dict"]
    assert sorted(state) == ["C", "bias", "weight"]
    assert state["weight"].shape == (30, 40) and state["bias"].shape == (30,)
    assert state["C"].item() == pytest.approx(chosen, rel=1e-5)
    assert os.path.exists(os.path.join(run_dir, "linear_probe", "model.pth.tar-1"))

    again = run_sweep(demo_data_root, output, *QUICK_SEARCH)
    assert again.returncode == 0 and "skipping this run" in again.stdout

    assert parse_results.main(["fewshot", "--method", "LinearProbeCLIP", "--shots", "2",
                               "--datasets", "demo", "--output", output, "--format", "csv"]) == 0
    rows = {row["dataset"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert rows["demo"]["method"] == "LinearProbeCLIP" and rows["demo"]["seeds"] == "1"
    assert float(rows["demo"]["mean"]) == accuracy

    common = ["--root", demo_data_root, "--trainer", "LinearProbeCLIP", "--seed", "1",
              "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", LP_TINY_CONFIG,
              "DATASET.NUM_SHOTS", "2", *QUICK_SEARCH]
    eval_dir = str(tmp_path / "eval")
    run(build_arg_parser().parse_args(
        ["--output-dir", eval_dir, "--eval-only", "--model-dir", run_dir, *common]))
    sys.stdout.flush()  # the log file is written through the stdout tee
    assert float(ACCURACY.findall(open(os.path.join(eval_dir, "log.txt")).read())[-1]) == accuracy

    # An interrupted run (checkpoint written, test not reached) resumes without a refit.
    resumed_dir = str(tmp_path / "resumed")
    shutil.copytree(os.path.join(run_dir, "linear_probe"), os.path.join(resumed_dir, "linear_probe"))
    run(build_arg_parser().parse_args(["--output-dir", resumed_dir, "--resume", *common]))
    sys.stdout.flush()
    resumed_log = open(os.path.join(resumed_dir, "log.txt")).read()
    assert "Deploying the classifier of the resumed run" in resumed_log
    assert "Searching C" not in resumed_log
    assert final_accuracy(resumed_log) == accuracy


@pytest.mark.slow
def test_runs_on_a_real_dassl(demo_data_root, tmp_path):
    from tests.fixtures.real_dassl import real_dassl_env, why_no_real_dassl

    reason = why_no_real_dassl()
    if reason:
        pytest.skip(reason)
    out = str(tmp_path / "dassl")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"), "--root", demo_data_root,
         "--trainer", "LinearProbeCLIP", "--seed", "1", "--dataset-config-file", DEMO_DATASET_CONFIG,
         "--config-file", LP_TINY_CONFIG, "--output-dir", out, "DATASET.NUM_SHOTS", "2", *QUICK_SEARCH],
        cwd=REPO_ROOT, env=real_dassl_env(dict(os.environ, HF_HUB_OFFLINE="1")),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "Engine backend: dassl" in log and "Chosen C = " in log
    assert 0 <= final_accuracy(log) <= 100
