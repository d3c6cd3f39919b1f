"""A bad config value ends train.py with one ``error:`` line and exit status 2, before
anything is built.

The in-process runs replace ``setup_logger`` and ``build_trainer`` (the first things
``run`` does after the config is set up) with a stub that fails the test, so each case
proves the error comes from the config check: no output folder, no CLIP, no data.
"""
import glob
import json
import os
import subprocess
import sys

import pytest
from yacs.config import CfgNode

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT, TINY_COOP_CONFIG
from engine.config_errors import ConfigError
from tests.fixtures.fake_datasets import make_fake_dataset
from tests.fixtures.real_dassl import real_dassl_env, why_no_real_dassl

TRAINER_NODES = ("COOP", "COCOOP", "IVLP", "VPT", "MAPLE", "POMP", "RPP", "ZSCLIP")
TEXT_CONTEXT = 77  # every CLIP we load: SOS + context + >= 1 class token + EOT fit in 77

# (opts, words the error line must contain: the key and the offending value)
BAD_VALUES = [
    (["DATALOADER.TRAIN_X.BATCH_SIZE", "0"], ["DATALOADER.TRAIN_X.BATCH_SIZE", ">= 1", "got 0"]),
    (["DATALOADER.TEST.BATCH_SIZE", "-4"], ["DATALOADER.TEST.BATCH_SIZE", "got -4"]),
    (["DATALOADER.TRAIN_U.BATCH_SIZE", "0"], ["DATALOADER.TRAIN_U.BATCH_SIZE", "got 0"]),
    (["DATALOADER.NUM_WORKERS", "-1"], ["DATALOADER.NUM_WORKERS", ">= 0", "got -1"]),
    (["OPTIM.LR", "-0.002"], ["OPTIM.LR", ">= 0", "got -0.002"]),
    (["OPTIM.NAME", "adamx"], ["OPTIM.NAME", "'adamx'", "sgd", "did you mean adam?"]),
    (["OPTIM.LR_SCHEDULER", "poly"], ["OPTIM.LR_SCHEDULER", "'poly'", "cosine"]),
    (["OPTIM.LR_SCHEDULER", "single_step", "OPTIM.STEPSIZE", "(2.5,)"], ["OPTIM.STEPSIZE", "got (2.5,)"]),
    (["OPTIM.LR_SCHEDULER", "multi_step", "OPTIM.STEPSIZE", "('10',)"], ["OPTIM.STEPSIZE", "got ('10',)"]),
    (["OPTIM.WARMUP_TYPE", "exp"], ["OPTIM.WARMUP_TYPE", "'exp'", "linear"]),  # tiny config warms up
    (["OPTIM.WARMUP_CONS_LR", "-1e-05"], ["OPTIM.WARMUP_CONS_LR", "got -1e-05"]),
    (["INPUT.TRANSFORMS", "['random_flipp', 'normalize']"],
     ["INPUT.TRANSFORMS", "'random_flipp'", "did you mean random_flip?"]),
    (["INPUT.INTERPOLATION", "cubic"], ["INPUT.INTERPOLATION", "'cubic'", "bicubic"]),
    (["INPUT.TRANSFORMS", "['randaugment']", "INPUT.RANDAUGMENT_M", "31"],
     ["INPUT.RANDAUGMENT_M", "[0, 30]", "got 31"]),
    (["DATASET.SUBSAMPLE_CLASSES", "half"], ["DATASET.SUBSAMPLE_CLASSES", "'half'", "base"]),
    (["DATASET.IN21K_CLASS_SET", "every"], ["DATASET.IN21K_CLASS_SET", "'every'", "pomp"]),
    (["DATALOADER.CORRUPT_IMAGE", "ignore"], ["DATALOADER.CORRUPT_IMAGE", "'ignore'", "skip"]),
    (["TRAINER.COOP.CLASS_TOKEN_POSITION", "start"], ["TRAINER.COOP.CLASS_TOKEN_POSITION", "'start'", "middle"]),
    (["TRAINER.POMP.CLASS_TOKEN_POSITION", "back"], ["TRAINER.POMP.CLASS_TOKEN_POSITION", "'back'"]),
    (["TRAINER.RPP.QKV_INIT", "shared"], ["TRAINER.RPP.QKV_INIT", "'shared'", "independent"]),
    (["TRAINER.RPP.RESIDUAL", "output"], ["TRAINER.RPP.RESIDUAL", "'output'", "input"]),
    (["TRAINER.CLASS_SAMPLING.LOG_BASE", "1.0"], ["TRAINER.CLASS_SAMPLING.LOG_BASE", "> 1", "got 1.0"]),
    (["TRAINER.CLASS_SAMPLING.LOG_BASE", "0.5"], ["TRAINER.CLASS_SAMPLING.LOG_BASE", "got 0.5"]),
    (["TRAINER.CLASS_SAMPLING.K", "-1"], ["TRAINER.CLASS_SAMPLING.K", "got -1"]),
    (["TRAINER.CLASS_SAMPLING.K", "1"], ["TRAINER.CLASS_SAMPLING.K", ">= 2", "got 1"]),
    (["OPTIM.MAX_EPOCH", "0"], ["OPTIM.MAX_EPOCH", ">= 1", "got 0"]),
    (["OPTIM.MAX_EPOCH", "-3"], ["OPTIM.MAX_EPOCH", "got -3"]),
    (["TEST.FINAL_MODEL", "best"], ["TEST.FINAL_MODEL", "last_step, best_val", "'best'", "did you mean best_val?"]),
    (["TRAIN.CHECKPOINT_ITERS", "-2"], ["TRAIN.CHECKPOINT_ITERS", ">= 0", "got -2"]),
    (["TRAIN.MAX_NONFINITE_STEPS", "-1"], ["TRAIN.MAX_NONFINITE_STEPS", ">= 0", "got -1"]),
    # Text context: at most 77 - 3 tokens; every trainer node, by key name.
    (["TRAINER.COOP.N_CTX", "-1"], ["TRAINER.COOP.N_CTX", "got -1"]),
    (["TRAINER.COOP.N_CTX", str(TEXT_CONTEXT - 2)], ["TRAINER.COOP.N_CTX", f"[0, {TEXT_CONTEXT - 3}]"]),
    (["TRAINER.COCOOP.N_CTX", "80"], ["TRAINER.COCOOP.N_CTX", "got 80"]),
    (["TRAINER.POMP.N_CTX", "75"], ["TRAINER.POMP.N_CTX", "got 75"]),
    (["TRAINER.MAPLE.N_CTX", "75"], ["TRAINER.MAPLE.N_CTX", "got 75"]),
    (["TRAINER.IVLP.N_CTX_TEXT", "75"], ["TRAINER.IVLP.N_CTX_TEXT", "got 75"]),
    (["TRAINER.RPP.N_CTX_TEXT", "-3"], ["TRAINER.RPP.N_CTX_TEXT", "got -3"]),
    (["TRAINER.IVLP.N_CTX_VISION", "-1"], ["TRAINER.IVLP.N_CTX_VISION", ">= 0", "got -1"]),
    (["TRAINER.VPT.N_CTX_VISION", "-1"], ["TRAINER.VPT.N_CTX_VISION", "got -1"]),
    (["TRAINER.RPP.N_CTX_VISION", "-8"], ["TRAINER.RPP.N_CTX_VISION", "got -8"]),
] + [
    ([f"TRAINER.{node}.PREC", "fp64"], [f"TRAINER.{node}.PREC", "'fp64'", "bf16"]) for node in TRAINER_NODES
]


def flags(tmp_path, *opts, trainer="CoOp", config_file=TINY_COOP_CONFIG,
          dataset_config=DEMO_DATASET_CONFIG, root=None, output_dir=None):
    return [
        "--root", str(root or tmp_path / "data"), "--trainer", trainer, "--seed", "1",
        "--dataset-config-file", dataset_config, "--config-file", config_file,
        "--output-dir", str(output_dir or tmp_path / "output"), *opts,
    ]


@pytest.fixture
def stop_after_config(monkeypatch):
    """Fail the test if ``run`` gets past the config (logger, then trainer and data)."""
    import engine.launch as launch

    def too_late(*_args, **_kwargs):
        raise AssertionError("the bad value got past the config check")

    monkeypatch.setattr(launch, "setup_logger", too_late)
    monkeypatch.setattr(launch, "build_trainer", too_late)


def error_line(capsys, argv):
    """Run train.py's main in-process; return its single stderr line (status must be 2)."""
    from engine.launch import main

    status = main(argv)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("opts, words", BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_value_is_one_line_before_anything_is_built(tmp_path, capsys, stop_after_config, opts, words):
    line = error_line(capsys, flags(tmp_path, *opts))
    for word in words:
        assert word in line, line
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize("yaml_text, words", [
    ("DATALOADER:\n  TRAIN_X:\n    BATCH_SIZE: 0\n", ["DATALOADER.TRAIN_X.BATCH_SIZE", "got 0"]),
    ("OPTIM:\n  LR: .nan\n", ["OPTIM.LR", "got nan"]),  # only YAML can spell NaN
])
def test_bad_value_in_a_yaml_file_is_caught_too(tmp_path, capsys, stop_after_config, yaml_text, words):
    config = tmp_path / "mine.yaml"
    config.write_text(yaml_text)
    line = error_line(capsys, flags(tmp_path, config_file=str(config)))
    assert all(word in line for word in words), line


def setup(tmp_path, *opts, **kwargs):
    """The config train.py would run with (``setup_cfg``), or its ConfigError."""
    from engine.launch import parse_args, setup_cfg

    return setup_cfg(parse_args(flags(tmp_path, *opts, **kwargs)))


@pytest.mark.parametrize("opts", [
    ["TRAINER.COOP.N_CTX", str(TEXT_CONTEXT - 3)],  # the longest text context that fits
    ["TRAINER.VPT.N_CTX_VISION", "300", "TRAINER.RPP.N_CTX_VISION", "0"],  # no vision bound
    ["TRAINER.CLASS_SAMPLING.K", "2", "TRAINER.CLASS_SAMPLING.LOG_BASE", "1.01"],
    ["OPTIM.LR", "0.0", "DATALOADER.NUM_WORKERS", "0", "TRAIN.CHECKPOINT_ITERS", "0",
     "TRAIN.MAX_NONFINITE_STEPS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "1"],
    ["OPTIM.LR_SCHEDULER", "single_step", "OPTIM.STEPSIZE", "(-1,)"],  # Dassl: decay after the end
    ["OPTIM.WARMUP_EPOCH", "0", "OPTIM.WARMUP_TYPE", "whatever"],  # not read without warmup
    ["DATALOADER.CORRUPT_IMAGE", "SKIP", "DATASET.SUBSAMPLE_CLASSES", "new"],
])
def test_values_at_the_edges_pass(tmp_path, opts):
    setup(tmp_path, *opts)


TRAINER_CONFIGS = os.path.join(REPO_ROOT, "configs", "trainers")


@pytest.mark.parametrize("config_file", sorted(glob.glob(os.path.join(TRAINER_CONFIGS, "*", "*.yaml"))),
                         ids=lambda p: os.path.relpath(p, TRAINER_CONFIGS))
def test_every_shipped_trainer_config_passes(tmp_path, config_file):
    setup(tmp_path, trainer=os.path.basename(os.path.dirname(config_file)), config_file=config_file)


def test_a_new_trainer_node_is_checked_by_key_name(tmp_path):
    from engine.config_checks import check_config_values

    cfg = setup(tmp_path)
    cfg.defrost()
    cfg.TRAINER.NEWMETHOD = CfgNode({"PREC": "fp32", "N_CTX_TEXT": 74, "N_CTX_VISION": 500})
    check_config_values(cfg)  # every value fits
    for key, value in (("PREC", "half"), ("N_CTX_TEXT", 75), ("N_CTX_VISION", -1)):
        node = CfgNode({"PREC": "fp32", "N_CTX_TEXT": 4, "N_CTX_VISION": 4})
        node[key] = value
        cfg.TRAINER.NEWMETHOD = node
        with pytest.raises(ConfigError, match=f"TRAINER.NEWMETHOD.{key} must be .*, got {value!r}"):
            check_config_values(cfg)


def test_a_none_value_is_a_config_error_not_a_crash(tmp_path):
    from engine.config_checks import check_config_values

    cfg = setup(tmp_path)
    cfg.defrost()
    for key in ("LR", "NAME"):
        original = cfg.OPTIM[key]
        cfg.OPTIM[key] = None
        with pytest.raises(ConfigError, match=f"OPTIM.{key} must be .*, got None"):
            check_config_values(cfg)
        cfg.OPTIM[key] = original


def test_modules_raise_the_same_config_error():
    """Where the modules check a config value themselves, they raise ConfigError too."""
    import torch.nn as nn

    from engine.bundled.config import get_cfg_default
    from engine.bundled.data.transforms import build_transform
    from engine.bundled.optim import build_lr_scheduler, build_optimizer
    from models.class_sampling import ClassSampler, check_log_base
    from models.sapl import QKV_INIT_CHOICES, check_choice

    def cfg_with(**inputs):
        cfg = get_cfg_default()
        cfg.INPUT.update(inputs)
        return cfg

    def optim_with(**values):
        optim = get_cfg_default().OPTIM
        optim.update(values)
        return optim

    optimizer = build_optimizer(nn.Linear(2, 2), optim_with())
    raisers = {
        "INPUT.INTERPOLATION": lambda: build_transform(cfg_with(INTERPOLATION="cubic")),
        "INPUT.TRANSFORMS": lambda: build_transform(cfg_with(TRANSFORMS=("flip",))),
        "OPTIM.NAME": lambda: build_optimizer(nn.Linear(2, 2), optim_with(NAME="adamx")),
        "OPTIM.LR_SCHEDULER": lambda: build_lr_scheduler(optimizer, optim_with(LR_SCHEDULER="poly")),
        "OPTIM.STEPSIZE": lambda: build_lr_scheduler(optimizer, optim_with(LR_SCHEDULER="multi_step", STEPSIZE=3)),
        "OPTIM.WARMUP_TYPE": lambda: build_lr_scheduler(optimizer, optim_with(WARMUP_EPOCH=1, WARMUP_TYPE="exp")),
        "TRAINER.CLASS_SAMPLING.LOG_BASE": lambda: check_log_base(1),
        "TRAINER.CLASS_SAMPLING.K": lambda: ClassSampler(10, 1),
        "TRAINER.RPP.QKV_INIT": lambda: check_choice("shared", QKV_INIT_CHOICES, "TRAINER.RPP.QKV_INIT"),
    }
    for key, raise_it in raisers.items():
        with pytest.raises(ConfigError) as info:
            raise_it()
        assert type(info.value) is ConfigError and key in str(info.value), (key, info.value)


# --- folders -------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, key", [("--output-dir", "OUTPUT_DIR"), ("--root", "DATASET.ROOT")])
@pytest.mark.parametrize("below", [False, True])
def test_a_file_where_a_folder_is_needed(tmp_path, capsys, stop_after_config, flag, key, below):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    path = a_file / "run1" if below else a_file
    argv = flags(tmp_path, **{("output_dir" if flag == "--output-dir" else "root"): path})
    line = error_line(capsys, argv)
    assert f"{key} ({flag})" in line and f"{a_file} is a file" in line, line
    assert a_file.read_text() == "not a folder"


# --- the YAML file itself ------------------------------------------------------------------

def latin1_config(tmp_path):
    data = "OPTIM:\n  NAME: sgd  # café\n".encode("latin-1")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(data)
    return path, data.index(b"\xe9")


def test_a_config_file_that_is_not_utf8(tmp_path, capsys, stop_after_config):
    path, offset = latin1_config(tmp_path)
    line = error_line(capsys, flags(tmp_path, config_file=str(path)))
    assert line == (f"error: Config file {path} is not UTF-8 text: byte 0xe9 at byte offset "
                    f"{offset} cannot be decoded; save the file as UTF-8")


@pytest.mark.slow  # a fresh interpreter imports torch and open_clip
def test_train_py_exits_2_with_one_line(tmp_path):
    path, offset = latin1_config(tmp_path)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"), *flags(tmp_path, config_file=str(path))],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: Config file {path} is not UTF-8 text: byte 0xe9 at byte offset {offset} "
        "cannot be decoded; save the file as UTF-8"
    ]


@pytest.mark.slow  # a fresh interpreter imports torch, open_clip and Dassl
def test_the_same_check_runs_on_a_real_dassl(tmp_path):
    reason = why_no_real_dassl()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"),
         *flags(tmp_path, "OPTIM.NAME", "adamx", "TRAINER.COOP.N_CTX", "-1")],
        capture_output=True, text=True, cwd=REPO_ROOT, env=real_dassl_env(), timeout=300,
    )
    assert result.returncode == 2, result.stderr
    # Dassl's own optimizer list (AVAI_OPTIMS) is the one quoted.
    assert result.stderr.splitlines() == [
        "error: OPTIM.NAME must be one of adam, amsgrad, sgd, rmsprop, radam, adamw, got 'adamx'; "
        "did you mean adam?"
    ]
    assert not (tmp_path / "output").exists()


# --- split files ---------------------------------------------------------------------------

def split_entries(n_classes=3):
    return {name: [[f"c{label}/{name}{i}.jpg", label, f"class {label}"]
                   for label in range(n_classes) for i in range(2)] for name in ("train", "val", "test")}


@pytest.mark.parametrize("tamper, words", [
    (lambda s: s["val"][1].__setitem__(1, -1), ['entry 1 of "val"', "negative label -1"]),
    (lambda s: s["test"][5].__setitem__(1, 3), ['entry 5 of "test"', "label 3, out of range", "0 .. 2"]),
    (lambda s: s["train"].append(["x.jpg", 7, "class 7"]), ['entry 6 of "train"', "label 7", "0 .. 3"]),
    (lambda s: s["train"].__setitem__(0, ["x.jpg", 4, "class 4"]), ['entry 0 of "train"', "label 4", "0 .. 3"]),
    (lambda s: s["test"][0].__setitem__(2, "class 1"),
     ['entry 0 of "test"', 'names label 0 "class 1"', 'entry 0 of "train" names it "class 0"']),
])
def test_split_file_labels_must_be_0_to_n_minus_1_with_one_name(tmp_path, tamper, words):
    from datasets.errors import SplitFileError
    from datasets.splits import read_split

    split = split_entries()
    read_split(write_json(tmp_path / "ok.json", split), str(tmp_path))  # the untouched file is fine
    tamper(split)
    path = write_json(tmp_path / "split_zhou_X.json", split)
    with pytest.raises(SplitFileError) as info:
        read_split(path, str(tmp_path), "X", fix="download it again")
    message = str(info.value)
    assert path in message and "download it again" in message
    for word in words:
        assert word in message, message


def test_split_label_out_of_range_stops_train_py_in_one_line(tmp_path, capsys):
    fake = make_fake_dataset(tmp_path / "data", "caltech101")
    split_path = os.path.join(fake.dataset_dir, "split_zhou_Caltech101.json")
    with open(split_path) as f:
        split = json.load(f)
    split["test"][-1][1] = len(fake.classnames)  # one past the last label
    write_json(split_path, split)
    dataset_config = os.path.join(REPO_ROOT, "configs", "datasets", "caltech101.yaml")
    line = error_line(capsys, flags(tmp_path, "--no-train", dataset_config=dataset_config))
    assert split_path in line and f"label {len(fake.classnames)}, out of range" in line, line


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)
    return str(path)
