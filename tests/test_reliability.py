"""Reliability: exact resume (also mid-epoch and after SIGKILL), safe loading, output
folders never silently reused, non-finite losses, corrupt images, one-line errors."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT, TINY_COOP_CONFIG
from tests.fixtures.crashing import train_until_crash

ACCURACY = re.compile(r"^\* accuracy: ([\d.]+)%$", re.M)

# CoOp on the demo data with 2 shots per class in batches of 4 (demo_batches() per
# epoch), a log line per batch and a mid-epoch checkpoint every 2 batches.
SMALL_RUN = [
    "DATASET.NUM_SHOTS", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.MAX_EPOCH", "2",
    "TRAIN.PRINT_FREQ", "1", "TRAIN.CHECKPOINT_ITERS", "2", "TRAIN.CHECKPOINT_FREQ", "1",
    "DATALOADER.TRAIN_X.SAMPLER", "RandomSampler", "DATALOADER.NUM_WORKERS", "0",
]
NO_TEST = ["TEST.NO_TEST", "True"]  # in-process runs that compare prompts, not accuracy


def demo_split(data_root):
    with open(os.path.join(str(data_root), "demo", "split_zhou_Demo.json")) as f:
        return json.load(f)


def demo_batches(data_root):
    """Batches per SMALL_RUN epoch: 2 shots of every class, batches of 4, the rest dropped."""
    classes = len({label for _, label, _ in demo_split(data_root)["train"]})
    return classes * 2 // 4


def flags(data_root, output_dir, trainer="CoOp", config_file=TINY_COOP_CONFIG):
    return [
        "--root", str(data_root), "--trainer", trainer, "--seed", "1",
        "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", config_file,
        "--output-dir", str(output_dir),
    ]


def cfg_for(data_root, output_dir, *extra):
    from engine import set_random_seed
    from engine.launch import parse_args, setup_cfg

    cfg = setup_cfg(parse_args([*flags(data_root, output_dir), *extra]))
    set_random_seed(cfg.SEED)  # as train.py does before building the trainer
    return cfg


def ctx_of(trainer):
    return trainer.model.prompt_learner.ctx.detach().clone()


# --------------------------------------------------------------------------- resume


@pytest.mark.real_dassl
def test_mid_epoch_resume_repeats_the_uninterrupted_run(demo_data_root, tmp_path, restore_stdout):
    from engine import build_trainer

    reference = build_trainer(cfg_for(demo_data_root, tmp_path / "a", *SMALL_RUN, *NO_TEST))
    initial_ctx = ctx_of(reference)
    reference.train()
    reference.close_writer()
    expected = ctx_of(reference)
    assert not torch.equal(expected, initial_ctx)

    crashing = build_trainer(cfg_for(demo_data_root, tmp_path / "b", *SMALL_RUN, *NO_TEST))
    train_until_crash(crashing, epoch=1, batch_idx=3)  # after the checkpoint at batch 2
    pointer = tmp_path / "b" / "prompt_learner" / "checkpoint"
    assert pointer.read_text().strip() == "model-mid-epoch.pth.tar"

    resumed = build_trainer(cfg_for(demo_data_root, tmp_path / "b", "--resume", *SMALL_RUN,
                                    *NO_TEST))
    resumed.train()
    resumed.close_writer()
    assert torch.equal(ctx_of(resumed), expected)
    assert resumed.get_current_lr() == pytest.approx(reference.get_current_lr())


def step_counting_coop():
    """A CoOp that keeps state only it knows (its step count and a running mean of the
    prompt) and hands it to the checkpoints through the extra-state hooks."""
    from trainers.coop import CoOp

    class StepCountingCoOp(CoOp):
        steps, ctx_mean = 0, None

        def forward_backward(self, batch):
            summary = super().forward_backward(batch)
            self.steps += 1
            ctx = self.model.prompt_learner.ctx.detach()
            previous = ctx if self.ctx_mean is None else self.ctx_mean
            self.ctx_mean = previous + (ctx - previous) / self.steps
            return summary

        def extra_checkpoint_state(self):
            return {"steps": self.steps, "ctx_mean": self.ctx_mean}

        def restore_extra_checkpoint_state(self, state):
            self.steps, self.ctx_mean = state["steps"], state["ctx_mean"]

    return StepCountingCoOp


@pytest.mark.slow
def test_extra_checkpoint_state_survives_a_mid_epoch_resume(demo_data_root, tmp_path, restore_stdout):
    trainer_class = step_counting_coop()
    reference = trainer_class(cfg_for(demo_data_root, tmp_path / "a", *SMALL_RUN, *NO_TEST))
    reference.train()
    reference.close_writer()
    assert reference.steps == 2 * demo_batches(demo_data_root)

    crashing = trainer_class(cfg_for(demo_data_root, tmp_path / "b", *SMALL_RUN, *NO_TEST))
    train_until_crash(crashing, epoch=1, batch_idx=3)  # after the checkpoint at batch 2

    resumed = trainer_class(cfg_for(demo_data_root, tmp_path / "b", "--resume", *SMALL_RUN, *NO_TEST))
    resumed.train()
    resumed.close_writer()
    assert resumed.steps == reference.steps
    assert torch.equal(resumed.ctx_mean, reference.ctx_mean)
    assert torch.equal(ctx_of(resumed), ctx_of(reference))


@pytest.mark.real_dassl
@pytest.mark.slow
def test_epoch_boundary_resume_restores_rng_and_optimizer(demo_data_root, tmp_path, restore_stdout):
    from engine import build_trainer

    run = [*SMALL_RUN, *NO_TEST, "TRAIN.CHECKPOINT_ITERS", "0"]
    reference = build_trainer(cfg_for(demo_data_root, tmp_path / "a", *run))
    reference.train()
    reference.close_writer()

    first = build_trainer(cfg_for(demo_data_root, tmp_path / "b", *run, "OPTIM.MAX_EPOCH", "1"))
    first.train()
    first.close_writer()
    # The second command asks for 2 epochs and resumes after the first one.
    resumed = build_trainer(cfg_for(demo_data_root, tmp_path / "b", "--resume", *run))
    resumed.train()
    resumed.close_writer()
    assert resumed.start_epoch == 1
    assert torch.equal(ctx_of(resumed), ctx_of(reference))


@pytest.mark.real_dassl
def test_checkpoints_are_not_resumed_unless_asked(demo_data_root, tmp_path, capsys, restore_stdout):
    from engine import build_trainer

    run = [*SMALL_RUN, *NO_TEST, "OPTIM.MAX_EPOCH", "1"]
    first = build_trainer(cfg_for(demo_data_root, tmp_path / "a", *run))
    first.train()
    first.close_writer()
    again = build_trainer(cfg_for(demo_data_root, tmp_path / "a", *run))
    again.before_train()
    again.close_writer()
    assert again.start_epoch == 0
    assert "Training from scratch (RESUME is not set)" in capsys.readouterr().out


# Runs train.py, but holds it inside the mid-epoch checkpoint write after batch 4 of
# epoch 2: the new checkpoint is complete in its temporary file, the old one not yet
# replaced. The test SIGKILLs it there. Holding (rather than killing when the log shows
# some batch) makes the kill land at the same, worst-case point on every run, however
# loaded the machine is.
HOLD_IN_A_CHECKPOINT_WRITE = r"""
import os, runpy, sys, time
sys.path.insert(0, os.getcwd())
import engine.bundled.utils.checkpoint as checkpoint
from trainers.clip_trainer import ClipTrainer

marker = os.environ["RPP_TEST_HOLD_MARKER"]
real_atomic_write = checkpoint._atomic_write
real_save_mid_epoch = ClipTrainer.save_mid_epoch_checkpoint
target = {"armed": False}

def save_mid_epoch(self, batches_done):
    target["armed"] = self.epoch == 1 and batches_done == 4
    real_save_mid_epoch(self, batches_done)

def atomic_write(fpath, write_to):
    if not (target["armed"] and os.path.basename(fpath) == "model-mid-epoch.pth.tar"):
        return real_atomic_write(fpath, write_to)

    def write_then_hold(f):
        write_to(f)
        f.flush()
        os.fsync(f.fileno())
        open(marker, "w").close()
        time.sleep(600)  # the test kills the process here

    return real_atomic_write(fpath, write_then_hold)

ClipTrainer.save_mid_epoch_checkpoint = save_mid_epoch
checkpoint._atomic_write = atomic_write
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(demo_data_root, tmp_path,
                                                                    restore_stdout):
    from engine import build_trainer

    batches = demo_batches(demo_data_root)
    assert batches > 4, "epoch 2 must go on after the checkpoint at batch 4"
    marker = tmp_path / "holding"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
               RPP_TEST_HOLD_MARKER=str(marker))
    killed_dir = tmp_path / "killed"
    arguments = [*flags(demo_data_root, killed_dir), *SMALL_RUN]
    log = tmp_path / "killed_stdout.txt"
    with open(log, "w") as stdout:
        proc = subprocess.Popen([sys.executable, "-c", HOLD_IN_A_CHECKPOINT_WRITE, *arguments],
                                cwd=REPO_ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT)
        try:
            # Meanwhile, the uninterrupted run (what train.py does, in this process).
            reference = build_trainer(cfg_for(demo_data_root, tmp_path / "reference", *SMALL_RUN))
            reference.train()
            reference.close_writer()
            expected_ctx = ctx_of(reference)
            expected_accuracy = reference.test()
            deadline = time.time() + 300
            while not marker.exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            held = marker.exists()
            proc.send_signal(signal.SIGKILL)  # (a no-op if it already ended)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    printed = log.read_text()
    assert held, "train.py never reached the checkpoint write after batch 4 of epoch 2:\n" \
        + printed[-3000:]
    assert proc.returncode == -signal.SIGKILL, printed[-3000:]
    assert f"epoch [2/2] batch [4/{batches}]" in printed and "Finish training" not in printed
    # Killed mid-write: the complete checkpoint of batch 2 is still the one on disk.
    mid_epoch = torch.load(killed_dir / "prompt_learner" / "model-mid-epoch.pth.tar",
                           weights_only=True)
    assert (mid_epoch["epoch"], mid_epoch["resume_state"]["batches_done"]) == (1, 2)

    resumed = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"), *arguments, "--resume"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming epoch [2/2] after batch [2/{batches}]" in resumed.stdout
    assert "epoch [1/2]" not in resumed.stdout

    assert float(ACCURACY.findall(resumed.stdout)[-1]) == pytest.approx(expected_accuracy, abs=0.05)
    final = killed_dir / "prompt_learner" / "model.pth.tar-2"
    assert torch.equal(torch.load(final, weights_only=True)["state_dict"]["ctx"], expected_ctx)


# --------------------------------------------------------------------------- output folders


def write_finished_run(folder):
    os.makedirs(folder)
    with open(os.path.join(folder, "log.txt"), "w") as f:
        f.write("...\nFinish training\n* accuracy: 50.0%\n")


def test_training_into_a_finished_run_is_refused(demo_data_root, tmp_path, capsys):
    from engine.launch import main

    out = tmp_path / "run"
    write_finished_run(out)
    assert main([*flags(demo_data_root, out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(out) in err and "Finish training" in err
    assert "--resume" in err and "--overwrite" in err
    assert sorted(os.listdir(out)) == ["log.txt"], "nothing was written"


def test_checkpoints_of_an_unfinished_run_also_count(demo_data_root, tmp_path, capsys):
    from engine.launch import main, previous_run

    assert previous_run(str(tmp_path / "missing")) is None
    os.makedirs(tmp_path / "run" / "tensorboard")
    (tmp_path / "run" / "log.txt").write_text("epoch [1/2] batch [1/5]\n")
    assert previous_run(str(tmp_path / "run")) is None, "a log alone is no run to protect"
    os.makedirs(tmp_path / "run" / "prompt_learner")
    (tmp_path / "run" / "prompt_learner" / "model-mid-epoch.pth.tar").write_bytes(b"x")
    assert "prompt_learner/model-mid-epoch.pth.tar" in previous_run(str(tmp_path / "run"))
    assert main([*flags(demo_data_root, tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoints of an unfinished run" in err and "--resume" in err


def test_overwrite_moves_the_old_run_aside(demo_data_root, tmp_path, capsys, restore_stdout):
    from engine.launch import main

    out = tmp_path / "run"
    write_finished_run(out)
    code = main([*flags(demo_data_root, out), "--overwrite", "DATASET.NUM_SHOTS", "1",
                 "OPTIM.MAX_EPOCH", "1"])
    assert code == 0
    moved = [p for p in os.listdir(tmp_path) if p.startswith("run.old-")]
    assert len(moved) == 1
    assert "* accuracy: 50.0%" in (tmp_path / moved[0] / "log.txt").read_text()
    log = (out / "log.txt").read_text()
    assert f"--overwrite: moved the previous run in {out}" in log and moved[0] in log
    assert "Finish training" in log


def test_overwrite_and_resume_together_are_refused(demo_data_root, tmp_path, capsys):
    from engine.launch import main

    assert main([*flags(demo_data_root, tmp_path / "x"), "--overwrite", "--resume"]) == 2
    assert "contradict" in capsys.readouterr().err


def test_eval_only_may_use_a_folder_with_a_run(demo_data_root, tmp_path):
    from engine.launch import check_output_dir, parse_args, setup_cfg

    out = tmp_path / "run"
    write_finished_run(out)
    args = parse_args([*flags(demo_data_root, out), "--eval-only"])
    assert check_output_dir(setup_cfg(args), args) is None


def test_bare_resume_means_the_output_dir_and_keeps_trailing_opts(demo_data_root, tmp_path):
    from engine.launch import parse_args, setup_cfg

    out = str(tmp_path / "run")
    cfg = setup_cfg(parse_args([*flags(demo_data_root, out), "--resume", "OPTIM.MAX_EPOCH", "7"]))
    assert cfg.RESUME == out and cfg.OPTIM.MAX_EPOCH == 7
    # appended after the KEY VALUE opts, as in "the same command with --resume"
    args = parse_args([*flags(demo_data_root, out), "OPTIM.MAX_EPOCH", "7", "--resume", "--overwrite"])
    assert args.opts == ["OPTIM.MAX_EPOCH", "7"] and args.overwrite
    assert setup_cfg(args).RESUME == out
    cfg = setup_cfg(parse_args([*flags(demo_data_root, out), "--resume", str(tmp_path / "other")]))
    assert cfg.RESUME == str(tmp_path / "other")
    cfg = setup_cfg(parse_args([*flags(demo_data_root, out)]))
    assert cfg.RESUME == ""
    cfg = setup_cfg(parse_args([*flags(demo_data_root, out), "RESUME", out]))
    assert cfg.RESUME == out


# --------------------------------------------------------------------------- one-line errors


@pytest.mark.real_dassl
def test_truncated_checkpoint_on_resume_is_one_line_naming_the_file(demo_data_root, tmp_path, capsys,
                                                                   restore_stdout):
    from engine.launch import main

    out = tmp_path / "run"
    os.makedirs(out / "prompt_learner")
    (out / "prompt_learner" / "checkpoint").write_text("model.pth.tar-1\n")
    good = {"state_dict": {"ctx": torch.zeros(4, 32)}, "epoch": 1}
    torch.save(good, out / "prompt_learner" / "model.pth.tar-1")
    data = (out / "prompt_learner" / "model.pth.tar-1").read_bytes()
    (out / "prompt_learner" / "model.pth.tar-1").write_bytes(data[: len(data) // 2])
    assert main([*flags(demo_data_root, out), "--resume", "OPTIM.MAX_EPOCH", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Cannot load checkpoint")
    assert str(out / "prompt_learner" / "model.pth.tar-1") in err


def test_yaml_syntax_error_is_one_line_with_file_and_line(demo_data_root, tmp_path, capsys):
    from engine.launch import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("OPTIM:\n  LR: 0.1\n  MAX_EPOCH: [1, 2\n")
    assert main(flags(demo_data_root, tmp_path / "x", config_file=str(bad))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.match(rf"error: Invalid YAML in {re.escape(str(bad))} at line \d+", err)


# --------------------------------------------------------------------------- non-finite loss


def nan_on_steps(trainer, steps):
    """Make the loss NaN on the given (0-based, global) training steps."""
    original = trainer.model.forward
    count = {"step": -1}

    def forward(image, **kwargs):
        outputs = original(image, **kwargs)
        if torch.is_grad_enabled():
            count["step"] += 1
            if count["step"] in steps:
                return outputs._replace(logits=outputs.logits * float("nan"))
        return outputs

    trainer.model.forward = forward


@pytest.mark.real_dassl
def test_non_finite_loss_skips_the_step_and_warns(demo_data_root, tmp_path, capsys, restore_stdout):
    from engine import build_trainer

    trainer = build_trainer(cfg_for(demo_data_root, tmp_path / "a", *SMALL_RUN,
                                    "OPTIM.MAX_EPOCH", "1", "TRAIN.CHECKPOINT_ITERS", "0"))
    nan_on_steps(trainer, {1, 2})
    seen = []
    original_update = trainer.model_update

    def model_update(names=None):
        seen.append(trainer.batch_idx)
        original_update(names)

    trainer.model_update = model_update
    trainer.train()
    trainer.close_writer()
    printed = capsys.readouterr().out
    batches = demo_batches(demo_data_root)
    assert seen == [0, *range(3, batches)], "the optimizer did not step on the NaN batches"
    assert f"Warning: non-finite loss (nan) at epoch [1/1] batch [2/{batches}]: step skipped " \
           "(1 in a row, 1 in total)" in printed
    assert "(2 in a row, 2 in total)" in printed
    assert "Skipped 2 step(s) with a non-finite loss in epoch [1/1]" in printed
    assert torch.isfinite(trainer.model.prompt_learner.ctx).all()
    assert "Finish training" in printed


@pytest.mark.real_dassl
def test_too_many_non_finite_losses_in_a_row_abort_in_one_line(demo_data_root, tmp_path, capsys,
                                                              restore_stdout, monkeypatch):
    from engine.launch import main
    from trainers.clip_trainer import ClipTrainer

    original_build = ClipTrainer.before_train

    def before_train(self):
        nan_on_steps(self, set(range(100)))
        original_build(self)

    monkeypatch.setattr(ClipTrainer, "before_train", before_train)
    code = main([*flags(demo_data_root, tmp_path / "a"), *SMALL_RUN,
                 "TRAIN.MAX_NONFINITE_STEPS", "3"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ("non-finite (nan) for 3 step(s) in a row, the last at epoch [1/2] batch "
            f"[3/{demo_batches(demo_data_root)}]") in err
    assert "TRAIN.MAX_NONFINITE_STEPS 3" in err


# --------------------------------------------------------------------------- corrupt images

# These run on either engine: on a real Dassl, engine/dassl_compat.py gives Dassl's
# reader and loaders the same policy.


@pytest.fixture
def corrupt_data_root(demo_data_root, tmp_path):
    """A copy of the demo data with one unreadable test image; returns (root, image path)."""
    root = tmp_path / "data"
    shutil.copytree(demo_data_root, root)
    import json

    split = json.loads((root / "demo" / "split_zhou_Demo.json").read_text())
    relative = split["test"][0][0]
    path = root / "demo" / "images" / relative
    assert path.is_file()
    path.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root, path


@pytest.mark.real_dassl
def test_corrupt_image_fails_in_one_line_naming_the_file(corrupt_data_root, tmp_path, capsys,
                                                        restore_stdout):
    from engine.launch import main

    root, path = corrupt_data_root
    code = main([*flags(root, tmp_path / "zs", trainer="ZeroshotCLIP"), "--eval-only"])
    assert code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (tqdm's bar is on stderr before it)
    assert err.count("error:") == 1 and f'error: Cannot read image "{path}"' in last
    assert "DATALOADER.CORRUPT_IMAGE skip" in last


@pytest.mark.real_dassl
def test_corrupt_image_skip_drops_and_counts_it(corrupt_data_root, tmp_path, capsys, restore_stdout):
    from engine.launch import main

    root, path = corrupt_data_root
    code = main([*flags(root, tmp_path / "zs", trainer="ZeroshotCLIP"), "--eval-only",
                 "DATALOADER.CORRUPT_IMAGE", "skip"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f'Warning: skipped unreadable image "{path}"' in printed
    test_images = len(demo_split(root)["test"])
    assert f"Skipped 1 unreadable image(s) in this pass over {test_images} images" in printed
    assert f"* total: {test_images - 1:,}\n" in printed


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_counting_loader_with_workers(tmp_path, workers):
    import torchvision.transforms as T

    from engine.bundled.config import get_cfg_default
    from engine.bundled.data import Datum
    from engine.bundled.data.data_manager import build_data_loader
    from engine.config_extension import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.DATALOADER.CORRUPT_IMAGE = "skip"
    cfg.INPUT.SIZE = (8, 8)
    items = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(path)
        if i in (1, 4, 5):
            path.write_bytes(b"broken")
        items.append(Datum(impath=str(path), label=i))
    loader = build_data_loader(cfg, data_source=items, batch_size=2, tfm=T.ToTensor(),
                               is_train=False)
    batches = list(loader)
    # batch (4, 5) is all unreadable and left out; the others lose their bad image
    assert [b["label"].tolist() for b in batches] == [[0], [2, 3]]
    assert sorted(os.path.basename(p) for p in loader.skipped_images) == ["1.png", "4.png", "5.png"]


def test_corrupt_image_policy_is_checked(tmp_path):
    from engine.bundled.config import get_cfg_default
    from engine.bundled.data.data_manager import corrupt_image_policy
    from engine.config_extension import extend_cfg
    from engine.user_errors import is_user_error

    cfg = extend_cfg(get_cfg_default())
    assert corrupt_image_policy(cfg) == "fail"
    cfg.DATALOADER.CORRUPT_IMAGE = "ignore"
    with pytest.raises(Exception, match="CORRUPT_IMAGE") as info:
        corrupt_image_policy(cfg)
    assert is_user_error(info.value)


def test_worker_wrapped_user_error_is_shown_as_its_own_line():
    from engine.launch import one_line

    wrapped = ("Caught CorruptImageError in DataLoader worker process 0.\nOriginal Traceback "
               "(most recent call last):\n  File \"x.py\", line 1\nengine.bundled.data."
               "data_manager.CorruptImageError: Cannot read image \"a.png\": broken")
    assert one_line(OSError(wrapped)) == 'Cannot read image "a.png": broken'
