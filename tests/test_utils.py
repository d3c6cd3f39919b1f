"""Checkpoints (atomic save, safe load, resume), logger tee, meters and small helpers."""
import json
import os
import pickle
import random
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from engine.bundled.config import get_cfg_default
from engine.bundled.optim import build_lr_scheduler, build_optimizer
from engine.bundled.utils import (
    AverageMeter, CheckpointError, MetricMeter, check_isfile, collect_env_info, count_num_param,
    listdir_nohidden, load_checkpoint, load_pretrained_weights, mkdir_if_missing, read_image,
    read_json, resume_from_checkpoint, save_checkpoint, set_random_seed, setup_logger, write_json,
)
from engine.user_errors import is_user_error


class ForeignObject:
    """Any class that weights_only loading must refuse to unpickle."""


def coop_optim_cfg():
    cfg = get_cfg_default().OPTIM
    cfg.NAME, cfg.LR, cfg.MAX_EPOCH, cfg.LR_SCHEDULER = "sgd", 0.002, 6, "cosine"
    cfg.WARMUP_EPOCH, cfg.WARMUP_TYPE = 1, "constant"
    return cfg


def build_run(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    cfg = coop_optim_cfg()
    optimizer = build_optimizer(model, cfg)
    return model, optimizer, build_lr_scheduler(optimizer, cfg)


def train_epoch(model, optimizer, scheduler):
    loss = model(torch.ones(2, 3)).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()


def all_names(directory):
    return sorted(os.listdir(directory))  # hidden (temp) files included


# ----------------------------------------------------------------------------
# save / load / resume
# ----------------------------------------------------------------------------

def test_save_resume_round_trip_continues_training(tmp_path, capsys):
    reference = build_run()
    for _ in range(6):
        train_epoch(*reference)

    model, optimizer, scheduler = build_run()
    for _ in range(3):
        train_epoch(model, optimizer, scheduler)
    state = {"state_dict": model.state_dict(), "epoch": 3, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "val_result": None}
    save_checkpoint(state, str(tmp_path / "prompt_learner"))

    model2, optimizer2, scheduler2 = build_run(seed=99)
    capsys.readouterr()
    start_epoch = resume_from_checkpoint(str(tmp_path / "prompt_learner"), model2, optimizer2, scheduler2)
    fpath = tmp_path / "prompt_learner" / "model.pth.tar-3"
    assert start_epoch == 3
    assert capsys.readouterr().out == (
        f'Loading checkpoint from "{fpath}"\nLoaded model weights\nLoaded optimizer\n'
        "Loaded scheduler\nPrevious epoch: 3\n"
    )
    for _ in range(3):
        train_epoch(model2, optimizer2, scheduler2)
    ref_model, ref_optimizer, _ = reference
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(ref_optimizer.param_groups[0]["lr"])
    for a, b in zip(model2.parameters(), ref_model.parameters()):
        assert torch.allclose(a, b)


def test_save_checkpoint_layout_and_messages(tmp_path, capsys):
    model = nn.Sequential(nn.Linear(2, 2))
    wrapped_keys = OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    save_dir = tmp_path / "model"
    state = {"state_dict": wrapped_keys, "epoch": 5, "optimizer": None, "scheduler": None,
             "val_result": np.float64(71.5)}
    returned = save_checkpoint(state, str(save_dir), is_best=True)
    fpath = save_dir / "model.pth.tar-5"
    best = save_dir / "model-best.pth.tar"
    assert returned == str(fpath)
    assert capsys.readouterr().out == (
        f"Checkpoint saved to {fpath}\nBest checkpoint saved to \"{best}\"\n"
    )
    assert all_names(save_dir) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-5"]
    assert (save_dir / "checkpoint").read_text() == "model.pth.tar-5\n"
    loaded = load_checkpoint(str(fpath))
    assert list(loaded) == ["state_dict", "epoch", "optimizer", "scheduler", "val_result"]
    assert list(loaded["state_dict"]) == ["0.weight", "0.bias"]
    assert loaded["val_result"] == 71.5 and type(loaded["val_result"]) is float
    assert fpath.read_bytes() == best.read_bytes()
    assert "module.0.weight" in state["state_dict"]  # the caller's dict is not modified

    save_checkpoint(dict(state, epoch=6), str(save_dir), model_name="model-best.pth.tar")
    assert (save_dir / "checkpoint").read_text() == "model-best.pth.tar\n"


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    save_dir = str(tmp_path)
    good = {"state_dict": nn.Linear(2, 2).state_dict(), "epoch": 1}
    save_checkpoint(good, save_dir, model_name="model.pth.tar")
    before = (tmp_path / "model.pth.tar").read_bytes()

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # e.g. Ctrl-C or a kill during the write

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(dict(good, epoch=2), save_dir, model_name="model.pth.tar")
    assert all_names(tmp_path) == ["checkpoint", "model.pth.tar"]  # no temp file left
    assert (tmp_path / "model.pth.tar").read_bytes() == before
    assert load_checkpoint(str(tmp_path / "model.pth.tar"))["epoch"] == 1


def test_load_checkpoint_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="File path is None"):
        load_checkpoint(None)
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError) as info:
        load_checkpoint(missing)
    assert str(info.value) == f'File is not found at "{missing}"'


def _checkpoint_error(path):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(str(path))
    message = str(info.value)
    assert "\n" not in message and f'"{path}"' in message
    assert is_user_error(info.value) and isinstance(info.value, RuntimeError)
    return message


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "epoch": 1}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _checkpoint_error(path)


def test_empty_and_garbage_files(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "empty or truncated" in _checkpoint_error(tmp_path / "empty.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all " * 8)
    _checkpoint_error(tmp_path / "junk.pth")


def test_pickled_foreign_object_is_refused_not_executed(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}, "scheduler": ForeignObject()}, path)
    message = _checkpoint_error(path)
    assert "ForeignObject" in message and "weights_only=True" in message


def test_plain_pickle_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as f:
        pickle.dump({"a": 1}, f, protocol=2)
    assert "not a readable torch checkpoint" in _checkpoint_error(path)


def test_resume_without_pointer_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        resume_from_checkpoint(str(tmp_path), nn.Linear(2, 2))


def test_load_pretrained_weights_keeps_matching_layers(tmp_path, capsys):
    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5))
    target = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # last layer has another shape
    state = OrderedDict(("module." + k, v) for k, v in source.state_dict().items())
    path = str(tmp_path / "weights.pth")
    torch.save({"state_dict": state}, path)
    load_pretrained_weights(target, path)
    assert torch.equal(target[0].weight, source[0].weight)
    assert capsys.readouterr().out == (
        f"Successfully loaded pretrained weights from {path}\n"
        "Layers discarded due to unmatched keys or size: ['1.weight', '1.bias']\n"
    )
    torch.save({"other.weight": torch.zeros(1)}, path)  # a bare state dict, nothing matches
    with pytest.warns(UserWarning, match="Cannot load"):
        load_pretrained_weights(target, path)


# ----------------------------------------------------------------------------
# logger
# ----------------------------------------------------------------------------

def test_setup_logger_tees_stdout_and_never_overwrites(tmp_path, capsys):
    original = sys.stdout
    first = setup_logger(str(tmp_path))
    try:
        assert sys.stdout is first
        print("=> result")
        sys.stdout.flush()
    finally:
        first.close()
    assert sys.stdout is original
    assert (tmp_path / "log.txt").read_text() == "=> result\n"
    assert capsys.readouterr().out == "=> result\n"

    second = setup_logger(str(tmp_path))
    try:
        print("second run")
    finally:
        second.close()
    logs = sorted(os.listdir(tmp_path))
    assert logs[0] == "log.txt" and len(logs) == 2
    assert logs[1].startswith("log.txt-20") and len(logs[1]) == len("log.txt-2024-01-01-00-00-00")
    assert (tmp_path / "log.txt").read_text() == "=> result\n"
    assert (tmp_path / logs[1]).read_text() == "second run\n"

    third = setup_logger(str(tmp_path))  # same second as `second`: still a new file
    third.close()
    assert len(os.listdir(tmp_path)) == 3


def test_setup_logger_with_a_file_path_or_none(tmp_path):
    assert setup_logger(None) is None
    logger = setup_logger(str(tmp_path / "sub" / "train.log"))
    try:
        print("x")
        assert logger.isatty() in (True, False)  # console attributes pass through
    finally:
        logger.close()
    assert (tmp_path / "sub" / "train.log").read_text() == "x\n"


# ----------------------------------------------------------------------------
# meters
# ----------------------------------------------------------------------------

def test_average_meter():
    meter = AverageMeter()
    meter.update(2.0)
    meter.update(torch.tensor(4.0), n=3)
    assert (meter.val, meter.sum, meter.count) == (4.0, 14.0, 4)
    assert meter.avg == pytest.approx(3.5)
    ema = AverageMeter(ema=True)
    ema.update(10.0)
    ema.update(20.0)
    assert ema.avg == pytest.approx((0.1 * 10.0) * 0.9 + 0.1 * 20.0)


def test_metric_meter_format():
    meter = MetricMeter()
    meter.update({"loss": torch.tensor(1.5), "acc": 50.0})
    meter.update({"loss": 0.5, "acc": 100.0})
    meter.update(None)
    assert str(meter) == "loss 0.5000 (1.0000) acc 100.0000 (75.0000)"
    assert str(MetricMeter(delimiter="\t")) == ""
    with pytest.raises(TypeError):
        meter.update([("loss", 1.0)])


# ----------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------

def test_json_and_directory_helpers(tmp_path):
    target = tmp_path / "a" / "b" / "split.json"
    write_json({"train": [["x.jpg", 0, "cat"]]}, str(target))
    assert read_json(str(target)) == {"train": [["x.jpg", 0, "cat"]]}
    assert target.read_text() == json.dumps({"train": [["x.jpg", 0, "cat"]]}, indent=4,
                                            separators=(",", ": "))
    mkdir_if_missing(str(tmp_path / "a"))  # exists already: fine
    for name in ("b.txt", ".hidden", "a.txt"):
        (tmp_path / "list").mkdir(exist_ok=True)
        (tmp_path / "list" / name).write_text("")
    assert sorted(listdir_nohidden(str(tmp_path / "list"))) == ["a.txt", "b.txt"]
    assert listdir_nohidden(str(tmp_path / "list"), sort=True) == ["a.txt", "b.txt"]
    assert check_isfile(str(target)) is True
    with pytest.warns(UserWarning, match="No file found at"):
        assert check_isfile(str(tmp_path / "missing")) is False


def test_read_image_is_rgb(tmp_path):
    path = str(tmp_path / "gray.png")
    Image.new("L", (5, 4), color=128).save(path)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (5, 4)


def test_count_num_param():
    model = nn.Linear(3, 2)  # 6 weights + 2 biases
    model.bias.requires_grad_(False)  # frozen ones count too
    assert count_num_param(model) == 8
    assert count_num_param(params=list(model.parameters())) == 8
    assert count_num_param(params=[{"params": model.weight}, {"params": [model.bias]}]) == 8
    with pytest.raises(ValueError):
        count_num_param()


def test_set_random_seed_makes_runs_repeatable():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()
    set_random_seed(7)
    first = draw()
    set_random_seed(7)
    assert draw() == first


def test_collect_env_info_adds_pillow(monkeypatch):
    import PIL
    import torch.utils.collect_env as collect_env
    monkeypatch.setattr(collect_env, "get_pretty_env_info", lambda: "PyTorch version: X")
    assert collect_env_info() == f"PyTorch version: X\n        Pillow ({PIL.__version__})"
