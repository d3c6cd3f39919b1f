"""The RPP/POMP sweeps (scripts/rpp, scripts/pomp, scripts/pretrained.sh,
scripts/base2new_compare.sh) run end to end on the demo data with the tiny CLIP."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def run_script(script, *args, env, timeout=600):
    # PYTHON: the scripts run train.py with the interpreter running the tests, not whatever python3 is
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", CFG="tiny_vit", SHOTS="2",
                    EPOCHS="1", PYTHON=sys.executable, **env)
    result = subprocess.run(["bash", os.path.join(REPO_ROOT, script), *map(str, args)], cwd="/",
                            env=full_env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_rpp_base2new_on_demo_prints_base_new_hm_next_to_the_baselines(demo_data_root, tmp_path):
    # the README demo compares with zero-shot CLIP and CoOp; CoOp's sweep is tested elsewhere
    env = {"DATA": demo_data_root, "OUTPUT": str(tmp_path / "out"), "COMPARE": "zsclip"}
    out = run_script("scripts/rpp/base2new.sh", "demo", 1, env=env)
    table = out[out.rindex("Dataset"):]
    for method in ("RPP", "ZeroshotCLIP"):
        row = re.search(rf"^\s*(demo)?\s+{method}\s+([\d.]+)\D+([\d.]+)\D+([\d.]+)", table, re.M)
        assert row, (method, table)
        base, new, hm = map(float, row.groups()[1:])
        assert hm == pytest.approx(2 * base * new / (base + new), abs=0.02) if base + new else hm == 0
    for part in ("train_base", "test_new"):
        for method in ("RPP/tiny_vit", "ZeroshotCLIP/tiny_vit"):
            log = tmp_path / "out" / "base2new" / part / "demo" / "shots_2" / method / "seed1" / "log.txt"
            assert log.is_file(), log
    again = run_script("scripts/rpp/base2new.sh", "demo", 1, env=env)
    assert again.count("skipping this run") == 4  # nothing is re-run


@pytest.mark.slow
def test_pretrain_then_zero_shot_transfer(demo_data_root, tmp_path):
    env = {"DATA": demo_data_root, "OUTPUT": str(tmp_path / "out"), "SOURCE": "demo", "XD_TARGETS": "demo"}
    for method, trainer_line in (("rpp", "Loaded pre-trained RPP prompts from"), ("pomp", "Loading weights to prompt_learner")):
        run_script(f"scripts/{method}/pretrain.sh", 1, env=env)
        name = method.upper()
        run_dir = tmp_path / "out" / "demo" / name / "tiny_vit_2shots" / "seed1"
        assert (run_dir / "prompt_learner").is_dir()
        out = run_script(f"scripts/{method}/xd.sh", "all", 1, env=env)
        assert trainer_line in out and str(run_dir) in out
        eval_log = tmp_path / "out" / "evaluation" / name / "tiny_vit_2shots" / "demo" / "seed1" / "log.txt"
        assert re.search(r"^\* accuracy: [\d.]+%$", eval_log.read_text(), re.M)
    # POMP keeps its best epoch on val (TEST.FINAL_MODEL best_val in its configs)
    assert (tmp_path / "out" / "demo" / "POMP" / "tiny_vit_2shots" / "seed1" / "prompt_learner"
            / "model-best.pth.tar").is_file()


def test_transfer_of_a_missing_pretraining_run_fails_clearly(tmp_path):
    env = dict(os.environ, OUTPUT=str(tmp_path), DATA=str(tmp_path), CFG="tiny_vit", SOURCE="demo",
               PYTHON=sys.executable)
    result = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts/rpp/xd.sh"), "demo", "1"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "run pretrain.sh 1 first" in result.stderr
