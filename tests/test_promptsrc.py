"""PromptSRC on the tiny CLIP and the demo dataset: each loss term against a computation
written here, the Gaussian prompt aggregation (weights, what the run ends with, resume),
train.py, the sweeps and the parser."""
import math
import os
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import REPO_ROOT
from test_parse_results import csv_rows, run_cli, write_base2new
from test_reliability import cfg_for as reliability_cfg_for
from test_sweeps import ACCURACY, dry, fake_checkpoint, run_script  # noqa: F401  (dry: a fixture)
from test_train_e2e import run_train_py
from tests.fixtures.crashing import train_until_crash

TINY_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "PromptSRC", "tiny_vit.yaml")
OFFICIAL_KEYS = {  # TRAINER.PROMPTSRC in the official train.py: names and defaults
    "N_CTX_VISION": 4, "N_CTX_TEXT": 4, "CTX_INIT": "a photo of a", "PREC": "fp16",
    "PROMPT_DEPTH_VISION": 9, "PROMPT_DEPTH_TEXT": 9, "TEXT_LOSS_WEIGHT": 25,
    "IMAGE_LOSS_WEIGHT": 10, "GPA_MEAN": 15, "GPA_STD": 1,
}
# 1 shot of the 15 base classes in batches of 4: 3 batches per epoch.
SHORT_RUN = ["DATASET.NUM_SHOTS", "1", "DATASET.SUBSAMPLE_CLASSES", "base",
             "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.MAX_EPOCH", "2",
             "DATALOADER.TRAIN_X.SAMPLER", "RandomSampler", "DATALOADER.NUM_WORKERS", "0",
             "TRAIN.PRINT_FREQ", "1", "TEST.NO_TEST", "True"]


def build(make_cfg, *opts, **kwargs):
    from engine import build_trainer

    return build_trainer(make_cfg("PromptSRC", "DATASET.NUM_SHOTS", 2, *opts,
                                  config_file=TINY_CONFIG, **kwargs))


def prompts_of(trainer):
    return {name: param.detach().clone()
            for name, param in trainer.model.prompt_learner.named_parameters() if param.requires_grad}


def short_run_cfg(data_root, output_dir, *extra):
    return reliability_cfg_for(data_root, output_dir, "--trainer", "PromptSRC", "--config-file",
                               TINY_CONFIG, *SHORT_RUN, *extra)


# --------------------------------------------------------------------------- config


def test_config_node_has_the_official_keys_and_defaults(make_cfg):
    cfg = make_cfg("PromptSRC")
    for key, value in OFFICIAL_KEYS.items():
        assert cfg.TRAINER.PROMPTSRC[key] == value and type(cfg.TRAINER.PROMPTSRC[key]) is type(value), key


@pytest.mark.parametrize("config, epochs, depth, gpa", [
    ("vit_b16_c2_ep20_batch4_4+4ctx", 20, 9, (15, 1)),
    ("vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets", 20, 3, (6, 10)),
    ("vit_b16_c2_ep50_batch4_4+4ctx_few_shot", 50, 9, (30, 30)),
])
def test_configs_hold_the_official_recipes(make_cfg, config, epochs, depth, gpa):
    path = os.path.join(REPO_ROOT, "configs", "trainers", "PromptSRC", f"{config}.yaml")
    cfg = make_cfg("PromptSRC", config_file=path)
    opts = cfg.TRAINER.PROMPTSRC
    assert cfg.OPTIM.MAX_EPOCH == epochs and cfg.OPTIM.LR == pytest.approx(0.0025)
    assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 4 and cfg.OPTIM.LR_SCHEDULER == "cosine"
    assert cfg.OPTIM.WARMUP_EPOCH == 1 and cfg.OPTIM.WARMUP_CONS_LR == pytest.approx(1e-5)
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16" and opts.PREC == "fp16"
    assert (opts.N_CTX_TEXT, opts.N_CTX_VISION, opts.CTX_INIT) == (4, 4, "a photo of a")
    assert (opts.PROMPT_DEPTH_TEXT, opts.PROMPT_DEPTH_VISION) == (depth, depth)
    assert (opts.TEXT_LOSS_WEIGHT, opts.IMAGE_LOSS_WEIGHT) == (25, 10)
    assert (opts.GPA_MEAN, opts.GPA_STD) == gpa


def test_the_template_list_is_promptsrcs_sixty():
    from models.templates import IMAGENET_TEMPLATES, PROMPTSRC_TEMPLATES

    # The official list: "a photo of a {}." first, then the rest of OpenAI's first 60.
    assert len(PROMPTSRC_TEMPLATES) == 60 and len(set(PROMPTSRC_TEMPLATES)) == 60
    assert PROMPTSRC_TEMPLATES[0] == "a photo of a {}."
    assert set(PROMPTSRC_TEMPLATES) == set(IMAGENET_TEMPLATES[:60])
    assert PROMPTSRC_TEMPLATES[1:4] == ["a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}."]
    assert PROMPTSRC_TEMPLATES[-1] == IMAGENET_TEMPLATES[59]


# --------------------------------------------------------------------------- losses


def test_each_loss_term_matches_an_independent_computation(make_cfg):
    from models.clip_loader import tokenize
    from models.templates import PROMPTSRC_TEMPLATES

    trainer = build(make_cfg, "DATASET.SUBSAMPLE_CLASSES", "base",
                    "TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT", 3, "TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT", 7)
    batch = next(iter(trainer.train_loader_x))
    image, label = batch["img"][:8], batch["label"][:8]
    trainer.set_model_mode("train")
    step = trainer.training_step(image, label)
    terms = trainer.loss_terms(step)
    assert set(terms) == {"loss_ce", "loss_scl_text", "loss_scl_image", "loss_scl_logits"}

    clip = trainer.teacher.clip_model
    with torch.no_grad():
        # Frozen text: raw features averaged over the 60 templates, then normalised.
        names = trainer.classnames
        texts = [template.replace("{}", name) for template in PROMPTSRC_TEMPLATES for name in names]
        per_template = clip.encode_text(tokenize(texts)).double().reshape(len(PROMPTSRC_TEMPLATES), len(names), -1)
        raw = per_template.mean(0)
        frozen_text = raw / raw.norm(dim=-1, keepdim=True)
        frozen_image = clip.encode_image(image).double()
        frozen_image = frozen_image / frozen_image.norm(dim=-1, keepdim=True)
        zero_shot = clip.logit_scale.exp().double() * frozen_image @ frozen_text.t()
        text, img, logits = step.text_features.double(), step.image_features.double(), step.logits.double()
        expected = {
            "loss_ce": F.cross_entropy(logits, label),
            "loss_scl_text": 3 * (text - frozen_text).abs().mean(),
            "loss_scl_image": 7 * (img - frozen_image).abs().mean(),
            # KL(zero-shot || prompted), summed over everything, divided by B * C
            "loss_scl_logits": (zero_shot.softmax(-1) * (zero_shot.log_softmax(-1) - logits.log_softmax(-1))).sum()
            / logits.numel(),
        }
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-7), name
        assert value.item() > 1e-5, name  # a term that is zero here could not fail
    # The per-template normalised ensemble (CoOp's ZeroshotCLIP2) would not do.
    each = F.normalize(F.normalize(per_template, dim=-1).mean(0), dim=-1)
    assert (each - frozen_text).abs().max() > 1e-4


def test_a_step_encodes_each_thing_once_and_the_frozen_text_never(make_cfg, monkeypatch):
    import trainers.promptsrc

    monkeypatch.setattr(trainers.promptsrc, "PROMPTSRC_TEMPLATES", ["a photo of a {}.", "a {}."])  # fast
    trainer = build(make_cfg, "DATASET.SUBSAMPLE_CLASSES", "base")
    clip = trainer.teacher.clip_model
    calls = {"text": 0, "frozen_image": 0}

    def no_text(*args, **kwargs):
        raise AssertionError("the frozen class text is encoded once, when the trainer is built")

    original_encode_image = clip.encode_image

    def encode_image(*args, **kwargs):
        calls["frozen_image"] += 1
        return original_encode_image(*args, **kwargs)

    clip.encode_text, clip.encode_image = no_text, encode_image
    trainer.model.text_encoder.register_forward_hook(lambda *a: calls.__setitem__("text", calls["text"] + 1))
    batch = next(iter(trainer.train_loader_x))
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = 10 ** 6, 0
    trainer.forward_backward({"img": batch["img"][:4], "label": batch["label"][:4]})
    assert calls == {"text": 1, "frozen_image": 1}


def test_without_vision_prompts_the_frozen_image_pass_is_the_students(make_cfg, monkeypatch):
    import trainers.promptsrc

    monkeypatch.setattr(trainers.promptsrc, "PROMPTSRC_TEMPLATES", ["a photo of a {}."])  # fast
    trainer = build(make_cfg, "DATASET.SUBSAMPLE_CLASSES", "base", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", 0)

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the student's image features are the frozen tower's: no second pass")

    trainer.teacher.clip_model.encode_image = no_second_pass
    batch = next(iter(trainer.train_loader_x))
    trainer.set_model_mode("train")
    step = trainer.training_step(batch["img"][:4], batch["label"][:4])
    terms = trainer.loss_terms(step)
    assert terms["loss_scl_image"].item() == 0.0 and terms["loss_scl_text"].item() > 0


def test_a_gpa_std_of_zero_is_a_user_error(make_cfg):
    from engine.user_errors import UserError

    # (train.py prints a UserError as one "error: ..." line and exits with status 2)
    with pytest.raises(UserError, match=r"^TRAINER.PROMPTSRC.GPA_STD must be > 0 \(epochs\), got 0$"):
        build(make_cfg, "TRAINER.PROMPTSRC.GPA_STD", 0)


def test_eval_only_builds_no_frozen_reference_or_aggregation(make_cfg):
    trainer = build(make_cfg, "EVAL_ONLY", "True")
    assert trainer.teacher is None and trainer.gpa is None and trainer.extra_checkpoint_state() == {}


# --------------------------------------------------------------------------- GPA


@pytest.mark.parametrize("epochs, mean, std", [(20, 15, 1), (20, 6, 10), (50, 30, 30), (50, 45, 5), (2, 3, 1)])
def test_gpa_weights_are_the_gaussian_density_normalised_over_the_epochs(epochs, mean, std):
    from trainers.promptsrc import gpa_weights

    epoch = np.arange(1, epochs + 1, dtype=np.float64)
    density = np.exp(-((epoch - mean) ** 2) / (2.0 * std ** 2)) / (std * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(gpa_weights(epochs, mean, std), density / density.sum(), rtol=1e-12, atol=1e-300)
    assert sum(gpa_weights(epochs, mean, std)) == pytest.approx(1.0)


@pytest.mark.real_dassl
def test_the_run_ends_with_the_gaussian_aggregate_and_saves_it(demo_data_root, tmp_path, restore_stdout):
    from engine import build_trainer
    from trainers.promptsrc import gpa_weights

    trainer = build_trainer(short_run_cfg(demo_data_root, tmp_path / "run"))
    at_epoch_end = []
    finish_batch = trainer.finish_batch

    def record_then_finish():
        if trainer.batch_idx + 1 == trainer.num_batches:
            at_epoch_end.append(prompts_of(trainer))
        finish_batch()

    trainer.finish_batch = record_then_finish
    trainer.train()
    trainer.close_writer()
    weights = gpa_weights(2, 3, 1)  # tiny_vit.yaml: GPA N(3, 1) over 2 epochs
    final = prompts_of(trainer)
    assert len(at_epoch_end) == 2
    saved = torch.load(tmp_path / "run" / "prompt_learner" / "model.pth.tar-2", weights_only=True)["state_dict"]
    for name, value in final.items():
        expected = weights[0] * at_epoch_end[0][name] + weights[1] * at_epoch_end[1][name]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7)
        assert (value - at_epoch_end[1][name]).abs().max() > 1e-6, name  # the aggregate, not the last epoch
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_aggregated_prompts(demo_data_root, tmp_path, restore_stdout):
    from engine import build_trainer

    mid_epoch = ["TRAIN.CHECKPOINT_ITERS", "2", "TRAIN.CHECKPOINT_FREQ", "1"]
    reference = build_trainer(short_run_cfg(demo_data_root, tmp_path / "a", *mid_epoch))
    reference.train()
    reference.close_writer()

    crashing = build_trainer(short_run_cfg(demo_data_root, tmp_path / "b", *mid_epoch))
    train_until_crash(crashing, epoch=1, batch_idx=2)  # after the checkpoint at batch 2
    pointer = tmp_path / "b" / "prompt_learner" / "checkpoint"
    assert pointer.read_text().strip() == "model-mid-epoch.pth.tar"

    # The checkpoint gives back the aggregate of epoch 1 as it was at the crash.
    probe = build_trainer(short_run_cfg(demo_data_root, tmp_path / "b", "--resume", *mid_epoch))
    probe.resume_model_if_exist(str(tmp_path / "b"))
    assert probe.gpa.sum.keys() == crashing.gpa.sum.keys()
    for name, value in probe.gpa.sum.items():
        assert torch.equal(value, crashing.gpa.sum[name]), name

    resumed = build_trainer(short_run_cfg(demo_data_root, tmp_path / "b", "--resume", *mid_epoch))
    resumed.train()
    resumed.close_writer()
    expected, got = prompts_of(reference), prompts_of(resumed)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name


# --------------------------------------------------------------------------- train.py


@pytest.mark.slow
def test_train_py_trains_promptsrc_on_the_demo_and_eval_only_reproduces_it(demo_data_root, tmp_path):
    out = str(tmp_path / "promptsrc")
    common = ["--root", demo_data_root, "--trainer", "PromptSRC", "--seed", 1,
              "--dataset-config-file", os.path.join(REPO_ROOT, "configs", "datasets", "demo.yaml"),
              "--config-file", TINY_CONFIG]
    trained = run_train_py(*common, "--output-dir", out, "OPTIM.MAX_EPOCH", 1, "DATASET.NUM_SHOTS", 2)
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "Self-regulation against frozen CLIP (60 templates)" in log
    assert re.search(r"loss_ce [\d.]+ .* loss_scl_text [\d.]+ .* loss_scl_image [\d.]+ .* loss_scl_logits", log)
    assert "Using the GPA prompts" in log and "Finish training" in log
    accuracy = float(re.findall(r"^\* accuracy: ([\d.]+)%$", log, re.M)[-1])
    checkpoint = torch.load(os.path.join(out, "prompt_learner", "model.pth.tar-1"), weights_only=True)
    assert "gpa" in checkpoint["resume_state"]["extra"]
    assert not any("clip" in key for key in checkpoint["state_dict"]), "only prompts are saved"

    evaluated = run_train_py(*common, "--output-dir", out + "_eval", "--eval-only", "--model-dir", out,
                             "--load-epoch", 1, "DATASET.NUM_SHOTS", 2)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    eval_log_text = open(os.path.join(out + "_eval", "log.txt")).read()
    assert "Self-regulation" not in eval_log_text
    assert float(re.findall(r"^\* accuracy: ([\d.]+)%$", eval_log_text, re.M)[-1]) == pytest.approx(accuracy)


# --------------------------------------------------------------------------- sweeps and parser


def test_base2new_sweep_trains_on_base_and_tests_the_last_epoch_on_new(dry):
    cfg = "vit_b16_c2_ep20_batch4_4+4ctx"
    common = f"dtd/shots_16/PromptSRC/{cfg}/seed2"
    train_dir = f"{dry.output}/base2new/train_base/{common}"
    fake_checkpoint(train_dir, 20)
    result, (train, test) = dry("scripts/promptsrc/base2new.sh", "dtd", 2)
    assert result.returncode == 0, result.stderr
    for command in (train, test):
        assert command["flags"]["--trainer"] == "PromptSRC"
        assert command["flags"]["--config-file"] == f"configs/trainers/PromptSRC/{cfg}.yaml"
    assert train["opts"] == {"DATASET.NUM_SHOTS": "16", "DATASET.SUBSAMPLE_CLASSES": "base"}
    assert test["flags"]["--model-dir"] == train_dir and test["flags"]["--load-epoch"] == "20"
    assert test["flags"]["--output-dir"] == f"{dry.output}/base2new/test_new/{common}"
    assert test["opts"]["DATASET.SUBSAMPLE_CLASSES"] == "new"


def test_cross_dataset_and_dg_sweeps_use_the_imagenet_model(dry):
    cfg = "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets"
    model_dir = f"{dry.output}/imagenet/PromptSRC/{cfg}_16shots/seed1"
    result, (train,) = dry("scripts/promptsrc/xd_train.sh", 1)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--config-file"] == f"configs/trainers/PromptSRC/{cfg}.yaml"
    assert train["flags"]["--output-dir"] == model_dir
    fake_checkpoint(model_dir, 20)
    result, (test,) = dry("scripts/promptsrc/xd_test.sh", "eurosat", 1)
    assert result.returncode == 0, result.stderr
    assert test["flags"]["--model-dir"] == model_dir and test["flags"]["--load-epoch"] == "20"
    result, tests = dry("scripts/promptsrc/dg_test.sh", 1)
    assert result.returncode == 0, result.stderr
    assert [os.path.basename(t["flags"]["--dataset-config-file"]) for t in tests] == [
        "imagenetv2.yaml", "imagenet_sketch.yaml", "imagenet_a.yaml", "imagenet_r.yaml"]


@pytest.mark.parametrize("dataset, extra, gpa", [
    ("caltech101", (), None),
    ("DTD", (), ("45", "5")),  # any spelling of a dataset the official comment names
    ("eurosat", ("TRAINER.PROMPTSRC.GPA_MEAN", "40"), ("40", "5")),  # the caller's opts win
])
def test_few_shot_sweep_sets_the_official_gpa_per_dataset(dry, dataset, extra, gpa):
    result, (train,) = dry("scripts/promptsrc/few_shot.sh", dataset, 4, 3, *extra)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--config-file"] == "configs/trainers/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml"
    assert train["opts"]["DATASET.NUM_SHOTS"] == "4"
    got = (train["opts"].get("TRAINER.PROMPTSRC.GPA_MEAN"), train["opts"].get("TRAINER.PROMPTSRC.GPA_STD"))
    assert got == (gpa or (None, None))


def test_parser_reads_promptsrc_runs_and_its_published_row(tmp_path, capsys):
    out = str(tmp_path / "output")
    cfg = "vit_b16_c2_ep20_batch4_4+4ctx"
    write_base2new(out, "PromptSRC", cfg, "dtd", base={1: 83.0, 2: 84.0}, new={1: 62.0, 2: 64.0})
    text, _ = run_cli(capsys, "base2new", "--output", out, "--method", "PromptSRC", "--datasets", "dtd",
                      "--reference", "PromptSRC", "--format", "csv")
    rows = csv_rows(text)
    assert float(rows["PromptSRC", "dtd", "base"]["mean"]) == pytest.approx(83.5)
    assert float(rows["PromptSRC", "dtd", "new"]["mean"]) == pytest.approx(63.0)
    published = {key: row for key, row in rows.items() if "published" in key[0]}
    assert float(published["PromptSRC (published)", "dtd", "hm"]["mean"]) == pytest.approx(71.75)


def test_published_numbers_are_consistent():
    import json

    entries = json.load(open(os.path.join(REPO_ROOT, "tools", "reference_results.json")))["entries"]
    ours = {e["protocol"]: e for e in entries if e["method"] == "PromptSRC"}
    assert set(ours) == {"base2new", "xd"} and all(e["source"] for e in ours.values())
    for dataset, row in ours["base2new"]["results"].items():  # HM = 2BN / (B + N)
        assert 2 * row["base"] * row["new"] / (row["base"] + row["new"]) == pytest.approx(row["hm"], abs=0.011), dataset
    assert ours["base2new"]["results"]["average"] == {"base": 84.26, "new": 76.10, "hm": 79.97}
    targets = [r["accuracy"] for d, r in ours["xd"]["results"].items() if d not in ("imagenet", "average")]
    assert len(targets) == 10 and sum(targets) / 10 == pytest.approx(ours["xd"]["results"]["average"]["accuracy"], abs=0.005)


@pytest.mark.slow
def test_base2new_sweep_on_the_demo_and_the_parser(demo_data_root, tmp_path, capsys):
    env = {"DATA": demo_data_root, "OUTPUT": str(tmp_path / "output"), "CFG": "tiny_vit",
           "EPOCHS": "1", "PYTHON": sys.executable}
    result = run_script("scripts/promptsrc/base2new.sh", "demo", 1, "DATASET.NUM_SHOTS", "2", env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    common = "demo/shots_16/PromptSRC/tiny_vit/seed1"
    train_log = (tmp_path / "output" / "base2new" / "train_base" / common / "log.txt").read_text()
    test_log = (tmp_path / "output" / "base2new" / "test_new" / common / "log.txt").read_text()
    assert "Using the GPA prompts" in train_log and ACCURACY.search(train_log.split("Finish training")[-1])
    assert "model.pth.tar-1" in test_log and ACCURACY.search(test_log)
    text, _ = run_cli(capsys, "base2new", "--output", str(tmp_path / "output"), "--method", "PromptSRC/tiny_vit",
                      "--datasets", "demo", "--format", "csv")
    rows = csv_rows(text)
    base = float(re.findall(r"^\* accuracy: ([\d.]+)%$", train_log, re.M)[-1])
    assert float(rows["PromptSRC", "demo", "base"]["mean"]) == pytest.approx(base)  # one config: the trainer names it
