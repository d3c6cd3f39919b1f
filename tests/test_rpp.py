"""RPP (SAPL prompts + KD), RPP_Transfer and POMP on the tiny CLIP and the demo dataset."""
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from engine import build_trainer
from models.distillation import kd_loss
from models import zero_shot
from models.sapl import SAPLHook
from engine.bundled.utils.checkpoint import CheckpointMismatch

from conftest import REPO_ROOT

RPP_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "RPP", "tiny_vit.yaml")
IVLP_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "IVLP", "tiny_vit.yaml")
POMP_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "POMP", "tiny_vit.yaml")
STRUCTURE = ("TRAINER.RPP.N_CTX_TEXT", 2, "TRAINER.RPP.N_CTX_VISION", 2)  # as IVLP's tiny config


def build(make_cfg, trainer, *opts, config_file=RPP_CONFIG, **kwargs):
    cfg = make_cfg(trainer, "DATASET.NUM_SHOTS", 2, *opts, config_file=config_file, **kwargs)
    return build_trainer(cfg)


def zeroshot_text_features_of(text_encoder, classnames):
    """CLIP's own encode_text path on the demo template (what ZeroshotCLIP uses)."""
    return F.normalize(text_encoder.encode_texts([f"a photo of a {name}." for name in classnames]).float(), dim=-1)


def sample_images(trainer, count=6):
    return next(iter(trainer.test_loader))["img"][:count].to(trainer.device)


def one_step(trainer, batch):
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = 10 ** 6, 0  # no LR step
    return trainer.forward_backward(batch)


def first_batch(trainer, size=8):
    batch = next(iter(trainer.train_loader_x))
    return {"img": batch["img"][:size], "label": batch["label"][:size]}


def test_tied_sapl_prompts_are_exactly_deep_prompting(make_cfg, restore_stdout, tmp_path):
    ivlp = build(make_cfg, "IVLP", output_dir=str(tmp_path / "ivlp"), config_file=IVLP_CONFIG)
    rpp = build(make_cfg, "RPP", *STRUCTURE, "TRAINER.RPP.SHARE_QKV", True, "TRAINER.RPP.KD", False,
                output_dir=str(tmp_path / "rpp"))
    source, target = ivlp.model.prompt_learner, rpp.model.prompt_learner
    with torch.no_grad():
        text = [source.ctx, *source.deep_text_prompts]
        vision = [source.vision_ctx, *source.deep_vision_prompts]
        for mine, theirs in zip(target.text_prompts.prompts, text, strict=True):
            mine.copy_(theirs)
        for mine, theirs in zip(target.vision_prompts.prompts, vision, strict=True):
            mine.copy_(theirs)
        images = sample_images(rpp)
        assert torch.equal(rpp.model(images), ivlp.model(images))


def test_unshared_sapl_with_equal_prompts_matches_deep_prompting(make_cfg, restore_stdout, tmp_path):
    # Separate query/key/value streams through the frozen block's own attention give the
    # same function as the block's forward when the three prompts are equal.
    shared = build(make_cfg, "RPP", *STRUCTURE, "TRAINER.RPP.SHARE_QKV", True, "TRAINER.RPP.KD", False,
                   output_dir=str(tmp_path / "shared"))
    unshared = build(make_cfg, "RPP", *STRUCTURE, "TRAINER.RPP.KD", False, output_dir=str(tmp_path / "unshared"))
    with torch.no_grad():
        for side in ("text_prompts", "vision_prompts"):
            tied = getattr(shared.model.prompt_learner, side).prompts
            separate = getattr(unshared.model.prompt_learner, side)
            for role in ("query", "key", "value"):
                for mine, theirs in zip(getattr(separate, role), tied, strict=True):
                    mine.copy_(theirs)
        images = sample_images(unshared)
        _, _, hook = unshared.model.prompt_learner.text_inputs()
        assert isinstance(hook, SAPLHook)  # the separate path really runs
        torch.testing.assert_close(unshared.model(images), shared.model(images), rtol=1e-5, atol=1e-5)


def test_depth_zero_is_frozen_zero_shot_clip(make_cfg, restore_stdout):
    trainer = build(make_cfg, "RPP", "TRAINER.RPP.PROMPT_DEPTH_TEXT", 0, "TRAINER.RPP.PROMPT_DEPTH_VISION", 0,
                    "TRAINER.RPP.KD", False)
    assert list(trainer.model.prompt_learner.parameters()) == []
    text_encoder = trainer.model.text_encoder  # shares the frozen modules with the loaded CLIP
    with torch.no_grad():
        images = sample_images(trainer)
        image_features = F.normalize(trainer.model.image_encoder.visual(images).float(), dim=-1)
        text_features = zeroshot_text_features_of(text_encoder, trainer.classnames)
        expected = trainer.model.logit_scale.exp().float() * image_features @ text_features.t()
        torch.testing.assert_close(trainer.model(images), expected, rtol=1e-5, atol=1e-5)


def test_gradients_reach_query_key_and_value_prompts_separately(make_cfg, restore_stdout):
    # depth 2 of 3 layers: the last prompted layer's slot outputs still feed layer 3
    trainer = build(make_cfg, "RPP", "TRAINER.RPP.KD", False, "TRAINER.RPP.PROMPT_DEPTH_TEXT", 2,
                    "TRAINER.RPP.PROMPT_DEPTH_VISION", 2)
    learner = trainer.model.prompt_learner
    before = {name: p.detach().clone() for name, p in learner.named_parameters()}
    batch = first_batch(trainer)
    trainer.set_model_mode("train")
    image, label = trainer.parse_batch_train(batch)
    with trainer.autocast():
        logits = trainer.training_step(image, label).logits
    F.cross_entropy(logits, label).backward()
    for side in ("text_prompts", "vision_prompts"):
        prompts = getattr(learner, side)
        last = prompts.depth - 1
        for role in ("key", "value"):
            for layer, param in enumerate(getattr(prompts, role)):
                assert param.grad is not None and param.grad.abs().sum() > 0, (side, role, layer)
        # a query prompt only shapes its own slots' outputs, which the next prompted layer
        # overwrites: only the last prompted layer's query prompt reaches the loss, and only
        # when a later unprompted layer reads those slots (docs/method.md)
        assert prompts.query[last].grad.abs().sum() > 0, side
        for layer in range(last):
            grad = prompts.query[layer].grad
            assert grad is None or grad.abs().sum() == 0, (side, layer)
    learner.zero_grad()

    one_step(trainer, batch)
    for side in ("text_prompts", "vision_prompts"):
        prompts = getattr(learner, side)
        last = prompts.depth - 1
        query, key, value = (getattr(prompts, role)[last] for role in ("query", "key", "value"))
        # QKV_INIT "tied": the three start equal and must differ after one step
        assert torch.equal(before[f"{side}.query.{last}"], before[f"{side}.key.{last}"])
        assert not torch.equal(query, key) and not torch.equal(key, value) and not torch.equal(query, value)


def test_kd_teacher_text_features_are_computed_once_per_run(make_cfg, restore_stdout, monkeypatch, tmp_path):
    calls = []
    original = zero_shot.class_text_features

    def counting(clip_model, classnames, templates, **kwargs):
        calls.append(len(classnames))
        return original(clip_model, classnames, templates, **kwargs)

    monkeypatch.setattr(zero_shot, "class_text_features", counting)
    trainer = build(make_cfg, "RPP", "OPTIM.MAX_EPOCH", 2, "DATALOADER.TRAIN_X.BATCH_SIZE", 8,
                    "DATASET.SUBSAMPLE_CLASSES", "base", "TEST.NO_TEST", True,
                    output_dir=str(tmp_path / "run"))
    summaries = []
    original_step = trainer.forward_backward
    monkeypatch.setattr(trainer, "forward_backward", lambda batch: summaries.append(original_step(batch)) or summaries[-1])
    trainer.train()
    trainer.test()
    assert len(summaries) == 2 * trainer.num_batches >= 4
    assert all(s["loss_kd"] >= 0 and s["loss"] == pytest.approx(s["loss_ce"] + s["loss_kd"], rel=1e-5)
               for s in summaries)
    assert calls == [len(trainer.classnames)]


def test_kd_loss_term_matches_the_teacher(make_cfg, restore_stdout):
    trainer = build(make_cfg, "RPP", "TRAINER.RPP.KD_WEIGHT", 2.0, "TRAINER.RPP.KD_TEMPERATURE", 2.0)
    batch = first_batch(trainer)
    image, label = trainer.parse_batch_train(batch)
    with torch.no_grad():
        step = trainer.training_step(image, label)
        terms = trainer.loss_terms(step)
        teacher = trainer.teacher(image)
    logits = step.logits
    p_t = torch.softmax(teacher / 2, dim=1)
    log_p_s = torch.log_softmax(logits / 2, dim=1)
    expected = 2.0 * 4.0 * (p_t * (p_t.log() - log_p_s)).sum(1).mean()
    assert terms["loss_kd"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(terms) == {"loss_ce", "loss_kd"}


def test_kd_under_class_sampling_uses_the_same_columns(make_cfg, restore_stdout):
    trainer = build(make_cfg, "RPP", "TRAINER.CLASS_SAMPLING.K", 5)
    batch = first_batch(trainer, size=4)
    image, label = trainer.parse_batch_train(batch)
    torch.manual_seed(0)
    with torch.no_grad():
        step = trainer.training_step(image, label)
        terms = trainer.loss_terms(step)
        full_student = trainer.model(image)
        full_teacher = trainer.teacher(image)
    logits, sampled = step.logits, step.sampled
    assert logits.shape == (4, len(sampled.class_ids))
    torch.testing.assert_close(logits, full_student[:, sampled.class_ids], rtol=1e-5, atol=1e-5)
    expected = kd_loss(sampled.arrange(full_student[:, sampled.class_ids]),
                       sampled.arrange(full_teacher[:, sampled.class_ids]))
    assert terms["loss_kd"].item() == pytest.approx(expected.item(), rel=1e-4)


def test_rpp_prompts_transfer_to_other_class_names(make_cfg, restore_stdout, tmp_path):
    source_dir = str(tmp_path / "pretrain")
    source = build(make_cfg, "RPP", "OPTIM.MAX_EPOCH", 1, "DATASET.SUBSAMPLE_CLASSES", "base",
                   output_dir=source_dir)
    source.train()
    trained = {k: v.clone() for k, v in source.model.prompt_learner.state_dict().items()}

    target = build(make_cfg, "RPP_Transfer", "DATASET.SUBSAMPLE_CLASSES", "new",
                   "TRAINER.RPP_TRANSFER.PROMPTS", source_dir, output_dir=str(tmp_path / "transfer"))
    assert set(target.classnames).isdisjoint(source.classnames)
    for key, value in target.model.prompt_learner.state_dict().items():
        assert torch.equal(value, trained[key]), key
    result = target.test()
    assert 0.0 <= result <= 100.0
    # the transferred model's logits are the source prompts applied to the new class names
    images = sample_images(target)
    with torch.no_grad():
        reference = build(make_cfg, "RPP", "DATASET.SUBSAMPLE_CLASSES", "new", output_dir=str(tmp_path / "ref"))
        reference.model.prompt_learner.load_state_dict(trained)
        torch.testing.assert_close(target.model(images), reference.model(images))


def test_transfer_with_another_prompt_shape_fails_clearly(make_cfg, restore_stdout, tmp_path):
    source_dir = str(tmp_path / "pretrain")
    build(make_cfg, "RPP", "OPTIM.MAX_EPOCH", 1, output_dir=source_dir).train()
    with pytest.raises(CheckpointMismatch, match="shape"):
        build(make_cfg, "RPP_Transfer", "TRAINER.RPP.N_CTX_TEXT", 2,
              "TRAINER.RPP_TRANSFER.PROMPTS", source_dir, output_dir=str(tmp_path / "t"))
    with pytest.raises(CheckpointMismatch):
        build(make_cfg, "RPP_Transfer", "TRAINER.RPP.SHARE_QKV", True,
              "TRAINER.RPP_TRANSFER.PROMPTS", source_dir, output_dir=str(tmp_path / "t2"))


def test_transfer_without_prompts_fails_clearly(make_cfg, restore_stdout):
    from engine.user_errors import UserError
    with pytest.raises(UserError, match="RPP_TRANSFER.PROMPTS"):
        build(make_cfg, "RPP_Transfer")


@pytest.mark.parametrize("trainer_name,config", [("CoOp", None), ("MaPLe", "MaPLe"), ("RPP", "RPP")])
def test_sampled_class_logits_are_columns_of_the_full_logits(make_cfg, restore_stdout, trainer_name, config):
    kwargs = {} if config is None else {"config_file": os.path.join(REPO_ROOT, "configs", "trainers", config, "tiny_vit.yaml")}
    trainer = build(make_cfg, trainer_name, **kwargs)
    model = trainer.model
    images = sample_images(trainer, 3)
    class_ids = torch.tensor([5, 0, 3], device=trainer.device)
    with torch.no_grad():
        full = model(images)
        model.clear_text_feature_cache()
        model.text_chunk_classes = 4  # chunked evaluation equals one pass
        chunked = model(images)
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=1e-5)
    subset = model(images, class_ids=class_ids)  # with gradients: only these classes encoded
    torch.testing.assert_close(subset.detach(), full[:, class_ids], rtol=1e-5, atol=1e-5)


def test_pomp_trains_with_sampling_views_and_best_val(make_cfg, restore_stdout, tmp_path):
    out = str(tmp_path / "pomp")
    trainer = build(make_cfg, "POMP", "OPTIM.MAX_EPOCH", 2, config_file=POMP_CONFIG, output_dir=out)
    assert trainer.class_sampler.k == 8 and trainer.class_sampler.log_base == 10.0
    batch = next(iter(trainer.train_loader_x))
    assert isinstance(batch["img"], list) and len(batch["img"]) == 2  # K_TRANSFORMS views
    image, label = trainer.parse_batch_train(batch)
    assert image.shape[0] == 2 * batch["label"].shape[0] and torch.equal(label[:len(batch["label"])], label[len(batch["label"]):])
    trainer.train()
    assert os.path.isfile(os.path.join(out, "prompt_learner", "model-best.pth.tar"))
    assert list(trainer.model.prompt_learner.state_dict()) == ["ctx"]


def test_class_sampling_is_refused_by_cocoop(make_cfg, restore_stdout):
    from engine.user_errors import UserError
    with pytest.raises(UserError, match="CLASS_SAMPLING"):
        build(make_cfg, "CoCoOp", "TRAINER.CLASS_SAMPLING.K", 4,
              config_file=os.path.join(REPO_ROOT, "configs", "trainers", "CoCoOp", "tiny_vit.yaml"))


def count_image_tower_runs(trainer):
    """How often the frozen CLIP image tower runs (student and teacher share it)."""
    runs = []
    trainer.model.image_encoder.visual.conv1.register_forward_hook(lambda *_: runs.append(1))
    return runs


@pytest.mark.parametrize("vision_depth,runs_per_step", [(0, 1), (3, 2)])
def test_text_only_kd_runs_the_image_tower_once_per_step(make_cfg, restore_stdout, vision_depth,
                                                        runs_per_step):
    # Without vision prompts the student's image features are the frozen CLIP's, which the
    # teacher (same CLIP) reuses; with them the teacher needs its own frozen pass.
    trainer = build(make_cfg, "RPP", "TRAINER.RPP.PROMPT_DEPTH_VISION", vision_depth)
    assert trainer.teacher_reuses_image_features == (vision_depth == 0)
    batch = first_batch(trainer)
    runs = count_image_tower_runs(trainer)
    one_step(trainer, batch)
    assert len(runs) == runs_per_step
    # the reused features give the loss of a separate teacher pass
    image, label = trainer.parse_batch_train(batch)
    with torch.no_grad():
        step = trainer.training_step(image, label)
        kd = trainer.loss_terms(step)["loss_kd"]
        teacher = trainer.teacher(image)  # its own frozen image pass
    assert kd.item() == pytest.approx(kd_loss(step.logits, teacher).item(), rel=1e-5, abs=1e-7)


@pytest.mark.slow
def test_fixed_text_features_are_encoded_once_per_run(make_cfg, restore_stdout, monkeypatch):
    trainer = build(make_cfg, "RPP", "TRAINER.RPP.PROMPT_DEPTH_TEXT", 0, "TRAINER.RPP.KD", False,
                    "DATALOADER.TEST.BATCH_SIZE", 7)
    calls = []
    original = trainer.model.text_encoder.forward
    monkeypatch.setattr(trainer.model.text_encoder, "forward",
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    trainer.test()
    trainer.test()
    one_step(trainer, first_batch(trainer))
    trainer.test()
    assert len(trainer.test_loader) > 1
    assert len(calls) == 1


TRAINING_ONLY_LINES = ("Parameters to be updated", "Class sampling:", "Knowledge distillation",
                       "Turning off gradients", "load_model() is skipped")


def run_train_py_in_process(demo_data_root, output_dir, trainer, *opts):
    from conftest import DEMO_DATASET_CONFIG
    from engine.launch import main

    code = main(["--root", demo_data_root, "--seed", "1", "--trainer", trainer,
                 "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", RPP_CONFIG,
                 "--output-dir", str(output_dir), *map(str, opts)])
    assert code == 0
    sys.stdout.flush()  # main() tees stdout into the log
    return (output_dir / "log.txt").read_text()


@pytest.mark.slow
def test_eval_only_logs_say_only_what_applies(make_cfg, demo_data_root, restore_stdout, tmp_path):
    source_dir = tmp_path / "pretrain"
    source = build(make_cfg, "RPP", output_dir=str(source_dir))
    source.save_model(0, str(source_dir))
    sampling = ("TRAINER.CLASS_SAMPLING.K", 5)

    log = run_train_py_in_process(demo_data_root, tmp_path / "transfer", "RPP_Transfer", "--eval-only",
                                  "TRAINER.RPP_TRANSFER.PROMPTS", source_dir, *sampling)
    checkpoint = source_dir / "prompt_learner" / "model.pth.tar-1"
    assert f'Evaluating the pre-trained RPP prompts loaded from "{checkpoint}"' in log
    assert "* accuracy:" in log
    for line in TRAINING_ONLY_LINES:
        assert line not in log, line

    log = run_train_py_in_process(demo_data_root, tmp_path / "zeroshot", "ZeroshotCLIP", "--eval-only")
    assert "Nothing to load: zero-shot CLIP evaluates the hand-crafted prompts" in log
    assert "load_model() is skipped" not in log

    log = run_train_py_in_process(demo_data_root, tmp_path / "frozen", "RPP", "--eval-only",
                                  "TRAINER.RPP.PROMPT_DEPTH_TEXT", 0, "TRAINER.RPP.PROMPT_DEPTH_VISION", 0)
    assert "Nothing to load: RPP has no learnable prompts with this config" in log
    for line in TRAINING_ONLY_LINES:
        assert line not in log, line

    # a training run still says them
    log = run_train_py_in_process(demo_data_root, tmp_path / "train", "RPP", *sampling,
                                  "DATASET.NUM_SHOTS", 1, "OPTIM.MAX_EPOCH", 1, "TEST.NO_TEST", True)
    for line in TRAINING_ONLY_LINES[:-1]:
        assert line in log, line
