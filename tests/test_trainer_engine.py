"""The trainer loop (TrainerX) on CoOp + tiny CLIP: checkpoints, resume, best_val, logs."""
import os
import re

import pytest
import torch

from engine import build_trainer
from engine.bundled.utils.checkpoint import CheckpointMismatch


def quiet_train(trainer):
    trainer.train()
    trainer.close_writer()


@pytest.mark.real_dassl
def test_only_the_prompt_is_trainable_and_checkpointed(make_cfg):
    trainer = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2))
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable == ["prompt_learner.ctx"]
    assert trainer.get_model_names() == ["prompt_learner"]
    assert list(trainer.model.prompt_learner.state_dict()) == ["ctx"]


@pytest.mark.real_dassl
def test_log_line_checkpoints_and_lr_schedule(make_cfg, tmp_path, capsys, restore_stdout):
    out = str(tmp_path / "run")
    cfg = make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.MAX_EPOCH", 3,
                   "TRAIN.CHECKPOINT_FREQ", 1, output_dir=out)
    trainer = build_trainer(cfg)
    lrs = []
    original_run_epoch = trainer.run_epoch

    def recording_run_epoch():
        lrs.append(trainer.get_current_lr())
        original_run_epoch()

    trainer.run_epoch = recording_run_epoch
    quiet_train(trainer)
    printed = capsys.readouterr().out

    # CoOp's schedule: constant warm-up epoch, then cosine over MAX_EPOCH.
    assert lrs == pytest.approx([1e-5, 0.002, 0.002 * (1 + 0.5) / 2], rel=1e-6)
    # As in Dassl, the line is printed after forward_backward, which steps the LR on an
    # epoch's last batch: with one batch per epoch it shows the next epoch's LR.
    line = re.search(r"epoch \[2/3\] batch \[1/1\] time [\d.]+ \([\d.]+\) data [\d.]+ \([\d.]+\) "
                     r"loss [\d.]+ \([\d.]+\) acc [\d.]+ \([\d.]+\) lr 1\.5000e-03 eta \d+:\d\d:\d\d",
                     printed)
    assert line, printed
    for epoch in (1, 2, 3):
        assert os.path.exists(os.path.join(out, "prompt_learner", f"model.pth.tar-{epoch}"))
    assert "Finish training" in printed and "* accuracy:" in printed


@pytest.mark.real_dassl
def test_resume_continues_from_the_last_checkpoint(make_cfg, tmp_path, capsys, restore_stdout):
    out = str(tmp_path / "run")
    first = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.MAX_EPOCH", 2,
                                   "TRAIN.CHECKPOINT_FREQ", 1, output_dir=out))
    quiet_train(first)
    trained_ctx = first.model.prompt_learner.ctx.detach().clone()
    trained_lr = first.get_current_lr()

    second = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.MAX_EPOCH", 2,
                                    "TRAIN.CHECKPOINT_FREQ", 1, output_dir=out))
    assert second.resume_model_if_exist(out) == 2
    assert torch.equal(second.model.prompt_learner.ctx.detach(), trained_ctx)
    assert second.get_current_lr() == pytest.approx(trained_lr)
    assert "Found checkpoint at" in capsys.readouterr().out


@pytest.mark.real_dassl
def test_best_val_saves_and_deploys_the_best_model(make_cfg, tmp_path, capsys, restore_stdout):
    out = str(tmp_path / "run")
    trainer = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.MAX_EPOCH", 2,
                                     "TEST.FINAL_MODEL", "best_val", output_dir=out))
    quiet_train(trainer)
    printed = capsys.readouterr().out
    assert os.path.exists(os.path.join(out, "prompt_learner", "model-best.pth.tar"))
    assert "Evaluate on the *val* set" in printed
    assert "Deploy the model with the best val performance" in printed
    best = torch.load(os.path.join(out, "prompt_learner", "model-best.pth.tar"), weights_only=True)
    assert best["val_result"] is not None


@pytest.mark.real_dassl
def test_checkpoint_with_other_prompt_shape_fails_clearly(make_cfg, tmp_path, restore_stdout):
    out = str(tmp_path / "run")
    trainer = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.MAX_EPOCH", 1,
                                     output_dir=out))
    quiet_train(trainer)
    other = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "TRAINER.COOP.CTX_INIT", "",
                                   "TRAINER.COOP.N_CTX", 8))
    with pytest.raises(CheckpointMismatch, match=r"model.pth.tar-1.*ctx: file \(4, 32\) vs model \(8, 32\)"):
        other.load_model(out, epoch=1)


@pytest.mark.real_dassl
def test_coop_without_training_equals_zeroshot_clip(make_cfg, restore_stdout):
    coop = build_trainer(make_cfg("CoOp", "TRAINER.COOP.CTX_INIT", "a photo of a"))
    zeroshot = build_trainer(make_cfg("ZeroshotCLIP"))
    batch = next(iter(coop.test_loader))
    image = batch["img"][:8]
    with torch.no_grad():
        coop.model.eval()
        expected = zeroshot.model_inference(image)
        got = coop.model_inference(image)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_load_model_deploys_the_best_else_the_last_epoch(make_cfg, tmp_path, capsys, restore_stdout):
    from engine.user_errors import is_user_error

    out = str(tmp_path / "run")
    trainer = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.MAX_EPOCH", 2,
                                     "TRAIN.CHECKPOINT_FREQ", 1, "TEST.NO_TEST", True, output_dir=out))
    quiet_train(trainer)
    fresh = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2))
    capsys.readouterr()
    fresh.load_model(out)  # no model-best.pth.tar: the last epoch, as for every trainer
    last = os.path.join(out, "prompt_learner", "model.pth.tar-2")
    assert f"Load {last} to prompt_learner (epoch=2, val_result=None)" in capsys.readouterr().out
    assert torch.equal(fresh.model.prompt_learner.ctx, trainer.model.prompt_learner.ctx)
    with pytest.raises(FileNotFoundError, match=r"model\.pth\.tar-7") as missing:
        fresh.load_model(out, epoch=7)
    assert is_user_error(missing.value)  # train.py prints it as one error line


def test_official_coop_checkpoints_load_without_their_class_buffers(make_cfg, tmp_path, restore_stdout):
    trainer = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2))
    ctx = torch.randn_like(trainer.model.prompt_learner.ctx)
    folder = tmp_path / "official" / "prompt_learner"
    folder.mkdir(parents=True)
    # what the official CoOp saves: ctx plus frozen per-class embeddings of its class names
    torch.save({"state_dict": {"ctx": ctx, "token_prefix": torch.zeros(3, 1, 32),
                               "token_suffix": torch.zeros(3, 72, 32)}, "epoch": 50},
               folder / "model.pth.tar-50")
    trainer.load_model(str(tmp_path / "official"), epoch=50)
    assert torch.equal(trainer.model.prompt_learner.ctx, ctx)
