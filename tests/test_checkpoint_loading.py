"""Issue #15 items 4, 6 and 9: what a run folder's checkpoints mean, and every checkpoint
that cannot be used is one line (exit 2), not a traceback or a silent wrong result.

One short CoOp run on the demo data (1 epoch, tiny CLIP; conftest's ``trained_run``) is
trained once per session; each test works on a copy of its folder.
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from tests.fixtures.one_epoch_run import checkpoint_of, flags, run_main


@pytest.fixture
def run_copy(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def one_error_line(capsys, argv):
    status = run_main(argv)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --------------------------------------------------------------------------- item 4


def test_one_definition_of_has_a_checkpoint(tmp_path):
    from engine.checkpoint_files import has_checkpoint, resume_checkpoint
    from engine.launch import previous_run

    run, model = tmp_path / "run", tmp_path / "run" / "prompt_learner"
    os.makedirs(run / "tensorboard")
    (run / "tensorboard" / "model.pth.tar-9").write_bytes(b"x")  # not a model folder
    model.mkdir()
    assert not has_checkpoint(run) and resume_checkpoint(model) is None
    assert previous_run(str(run)) is None

    def sweep_says():
        return subprocess.run([sys.executable, "-m", "tools.has_checkpoint", str(run)],
                              cwd=REPO_ROOT).returncode

    assert sweep_says() == 1
    for epoch in (2, 10):  # a kill between a checkpoint and its pointer
        (model / f"model.pth.tar-{epoch}").write_bytes(b"x")
    assert has_checkpoint(run) and resume_checkpoint(model) == str(model / "model.pth.tar-10")
    assert "prompt_learner/model.pth.tar-10" in previous_run(str(run))
    assert sweep_says() == 0
    (model / "checkpoint").write_text("model.pth.tar-2\n")  # the pointer decides
    assert resume_checkpoint(model) == str(model / "model.pth.tar-2")


@pytest.mark.real_dassl
def test_a_checkpoint_without_its_pointer_resumes_from_its_epoch(demo_data_root, run_copy, capsys):
    os.remove(run_copy / "prompt_learner" / "checkpoint")
    expected_start = torch.load(checkpoint_of(run_copy), weights_only=True)["state_dict"]["ctx"]
    status = run_main(flags(demo_data_root, run_copy, "--resume", opts=["OPTIM.MAX_EPOCH", "2"]))
    out = capsys.readouterr().out
    assert status == 0
    assert "Previous epoch: 1" in out and "epoch [2/2]" in out and "epoch [1/2]" not in out
    assert "No checkpoint found" not in out
    assert (run_copy / "prompt_learner" / "model.pth.tar-2").is_file()
    assert torch.equal(torch.load(checkpoint_of(run_copy), weights_only=True)["state_dict"]["ctx"],
                       expected_start), "the epoch-1 checkpoint is left as it was"


# --------------------------------------------------------------------------- item 9: pointers


@pytest.mark.parametrize("pointer, words", [
    (b"\x80\x04\x95\xff\x00garbage", ["is not a file name", "binary"]),
    (b"../../../etc/passwd\n", ["'../../../etc/passwd'", "outside its folder"]),
    (b"model.pth.tar-7\n", ["names model.pth.tar-7, which does not exist"]),
])
def test_a_pointer_that_cannot_be_followed_is_one_line(demo_data_root, run_copy, capsys, pointer, words):
    pointer_file = run_copy / "prompt_learner" / "checkpoint"
    pointer_file.write_bytes(pointer)
    line = one_error_line(capsys, flags(demo_data_root, run_copy, "--resume"))
    assert str(pointer_file) in line
    for word in words:
        assert word in line, line


# --------------------------------------------------------------------------- item 9: structure


@pytest.mark.parametrize("content, words", [
    ([1, 2, 3], ["holds a list", "not a model checkpoint"]),
    (torch.zeros(4, 32), ["holds a bare tensor of shape (4, 32)"]),
    ({"epoch": 1, "weights": torch.zeros(3)}, ["has no state_dict"]),
    ({"state_dict": [torch.zeros(3)], "epoch": 1}, ["state_dict that is a list"]),
    ({"state_dict": {"ctx": torch.zeros(4, 32)}}, ["no epoch count", "cannot be resumed"]),
])
def test_a_checkpoint_of_the_wrong_structure_is_one_line(tmp_path, content, words):
    from engine.bundled.utils.checkpoint import load_weights
    from engine.launch import one_line
    from engine.user_errors import is_user_error

    path = tmp_path / "model.pth.tar-1"
    torch.save(content, path)
    with pytest.raises(Exception) as caught:
        load_weights(torch.nn.Linear(2, 2), str(path), resuming=True)
    assert is_user_error(caught.value), repr(caught.value)
    line = one_line(caught.value)
    assert str(path) in line and "\n" not in str(caught.value)
    for word in words:
        assert word in line, line


def test_a_list_as_checkpoint_on_resume_is_one_line(demo_data_root, run_copy, capsys):
    torch.save([1, 2, 3], checkpoint_of(run_copy))
    line = one_error_line(capsys, flags(demo_data_root, run_copy, "--resume"))
    assert "holds a list, not a model checkpoint" in line and str(checkpoint_of(run_copy)) in line


def test_a_missing_load_epoch_lists_the_saved_epochs(demo_data_root, run_copy, tmp_path, capsys):
    shutil.copy(checkpoint_of(run_copy), run_copy / "prompt_learner" / "model.pth.tar-3")
    line = one_error_line(capsys, flags(demo_data_root, tmp_path / "eval", "--eval-only",
                                        "--model-dir", str(run_copy), "--load-epoch", "5"))
    assert "no model.pth.tar-5" in line and "the epochs saved there are 1, 3" in line, line


def test_resuming_with_another_optimizer_is_one_line(demo_data_root, run_copy, capsys):
    # The run record would name OPTIM.NAME first (test_run_record); without one (a run
    # from before records) the checkpoint's own optimizer type still says it.
    (run_copy / "run_config.json").unlink(missing_ok=True)
    line = one_error_line(capsys, flags(demo_data_root, run_copy, "--resume",
                                        opts=["OPTIM.NAME", "adam"]))
    assert "optimizer SGD" in line and "uses Adam (OPTIM.NAME)" in line, line


# --------------------------------------------------------------------------- item 6: prompts


def test_non_finite_prompts_are_refused_at_load(demo_data_root, run_copy, tmp_path, capsys):
    checkpoint = torch.load(checkpoint_of(run_copy), weights_only=True)
    checkpoint["state_dict"]["ctx"][1, 3] = float("nan")
    torch.save(checkpoint, checkpoint_of(run_copy))
    line = one_error_line(capsys, flags(demo_data_root, tmp_path / "eval", "--eval-only",
                                        "--model-dir", str(run_copy)))
    assert "non-finite values (NaN or inf) in ctx" in line and str(checkpoint_of(run_copy)) in line


@pytest.mark.parametrize("opts, words", [
    (["TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"],
     ["TRAINER.COOP.CLASS_TOKEN_POSITION 'end' there, 'middle' here"]),
    (["TRAINER.COOP.CSC", "True", "TRAINER.COOP.CTX_INIT", "''"],
     ["TRAINER.COOP.CSC False there, True here", "TRAINER.COOP.CTX_INIT 'a photo of a' there, '' here"]),
])
def test_a_prompt_layout_mismatch_names_the_keys(demo_data_root, run_copy, tmp_path, capsys, opts, words):
    recorded = torch.load(checkpoint_of(run_copy), weights_only=True)["prompt_layout"]
    assert recorded == {"MODEL.BACKBONE.NAME": "tiny-vit", "TRAINER.COOP.N_CTX": 4,
                        "TRAINER.COOP.CSC": False, "TRAINER.COOP.CTX_INIT": "a photo of a",
                        "TRAINER.COOP.CLASS_TOKEN_POSITION": "end"}
    line = one_error_line(capsys, flags(demo_data_root, tmp_path / "eval", "--eval-only",
                                        "--model-dir", str(run_copy), opts=opts))
    assert "trained with another prompt layout" in line
    for word in words:
        assert word in line, line


def test_a_checkpoint_without_a_layout_record_loads_as_before(demo_data_root, run_copy, tmp_path, capsys):
    checkpoint = torch.load(checkpoint_of(run_copy), weights_only=True)
    del checkpoint["prompt_layout"]  # as official CoOp checkpoints
    torch.save(checkpoint, checkpoint_of(run_copy))
    status = run_main(flags(demo_data_root, tmp_path / "eval", "--eval-only", "--model-dir",
                            str(run_copy), opts=["TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"]))
    assert status == 0, capsys.readouterr().err
    assert f"Load {checkpoint_of(run_copy)}" in capsys.readouterr().out
