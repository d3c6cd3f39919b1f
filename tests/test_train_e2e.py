"""train.py end to end: a real subprocess trains, tests, saves, and evaluates again."""
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT, TINY_COOP_CONFIG

ACCURACY = re.compile(r"^\* accuracy: ([\d.]+)%$", re.M)


def run_train_py(*args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"), *map(str, args)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def common_args(data_root, output_dir, trainer="CoOp"):
    return [
        "--root", data_root, "--trainer", trainer, "--seed", 1,
        "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG,
        "--output-dir", output_dir,
    ]


@pytest.mark.slow
def test_one_epoch_train_then_eval_only_reproduces_the_accuracy(demo_data_root, tmp_path):
    out = str(tmp_path / "coop")
    trained = run_train_py(*common_args(demo_data_root, out), "OPTIM.MAX_EPOCH", 1,
                           "DATASET.NUM_SHOTS", 4)
    assert trained.returncode == 0, trained.stderr[-3000:]

    log = open(os.path.join(out, "log.txt")).read()
    assert "Finish training" in log
    assert "Deploy the last-epoch model" in log
    assert re.search(r"epoch \[1/1\] batch \[\d+/\d+\] time .* loss .* acc .* lr .* eta", log)
    final_accuracy = float(ACCURACY.findall(log)[-1])

    checkpoint_path = os.path.join(out, "prompt_learner", "model.pth.tar-1")
    checkpoint = torch.load(checkpoint_path, weights_only=True)
    assert list(checkpoint["state_dict"]) == ["ctx"], "only the learned prompt is saved"
    assert checkpoint["epoch"] == 1
    assert open(os.path.join(out, "prompt_learner", "checkpoint")).read().strip() == "model.pth.tar-1"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(out, "tensorboard")))

    eval_out = str(tmp_path / "coop_eval")
    evaluated = run_train_py(*common_args(demo_data_root, eval_out), "--eval-only",
                             "--model-dir", out, "--load-epoch", 1, "DATASET.NUM_SHOTS", 4)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    eval_log = open(os.path.join(eval_out, "log.txt")).read()
    assert "model.pth.tar-1" in eval_log
    assert float(ACCURACY.findall(eval_log)[-1]) == pytest.approx(final_accuracy)


def test_unknown_trainer_is_one_line_and_exit_code_2(demo_data_root, tmp_path):
    result = run_train_py(*common_args(demo_data_root, str(tmp_path / "x"), trainer="CoOOp"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Unknown trainer 'CoOOp'" in lines[0] and "Did you mean CoOp?" in lines[0]
    assert "ZeroshotCLIP" in lines[0]


def test_unknown_config_key_names_the_closest_key(demo_data_root, tmp_path, capsys):
    from engine.launch import main

    code = main([*map(str, common_args(demo_data_root, str(tmp_path / "x"))), "OPTIM.LRR", "0.1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "OPTIM.LRR" in err and "OPTIM.LR" in err


def test_zeroshot_clip_evaluates_the_demo_dataset(demo_data_root, tmp_path, capsys, restore_stdout):
    from engine.launch import build_arg_parser, run

    args = build_arg_parser().parse_args([
        *map(str, common_args(demo_data_root, str(tmp_path / "zs"), trainer="ZeroshotCLIP")),
        "--eval-only",
    ])
    trainer = run(args)
    printed = capsys.readouterr().out
    accuracy = float(ACCURACY.findall(printed)[-1])
    assert 0.0 <= accuracy <= 100.0
    assert trainer.text_features.shape == (len(trainer.classnames), 40)
    assert "=> result" in printed and "* macro_f1:" in printed


def test_seed_zero_is_honoured(make_cfg):
    assert make_cfg("CoOp", "--seed", "0").SEED == 0
    assert make_cfg("CoOp").SEED == 1


def test_missing_dataset_is_reported_without_traceback(tmp_path, capsys):
    from engine.launch import main

    args = common_args(str(tmp_path / "empty_root"), str(tmp_path / "x"))
    args[args.index(DEMO_DATASET_CONFIG)] = os.path.join(REPO_ROOT, "configs", "datasets", "dtd.yaml")
    assert main(list(map(str, args))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert os.path.join(str(tmp_path / "empty_root"), "dtd") in err and "DATASETS.md" in err


def test_missing_weights_offline_lists_the_paths_tried(demo_data_root, tmp_path, capsys, monkeypatch):
    from engine.launch import main

    monkeypatch.setenv("CLIP_CACHE_DIR", str(tmp_path / "clip_cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = [*map(str, common_args(demo_data_root, str(tmp_path / "x"), trainer="ZeroshotCLIP")),
            "--eval-only", "MODEL.BACKBONE.NAME", "ViT-B/16", "INPUT.SIZE", "(224, 224)"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert os.path.join(str(tmp_path / "clip_cache"), "ViT-B-16.pt") in err
    assert "MODEL.BACKBONE.PATH" in err
