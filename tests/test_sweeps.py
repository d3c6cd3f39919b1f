"""The sweep scripts (scripts/{coop,cocoop,kgcoop,maple,ivlp,vpt,promptsrc,zsclip}/*.sh and scripts/common.sh).

Most tests swap PYTHON for a stub that prints each train.py command line instead of
running it, so every script's configs, folders and --load-epoch are checked in
milliseconds; slow tests run real sweeps on the demo data with the tiny CLIP, including
one that is interrupted and then finished by re-running the script.
"""
import json
import math
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

ACCURACY = re.compile(r"^\* accuracy: [\d.]+%$", re.M)
SCRIPTS = [
    f"scripts/{method}/{name}.sh"
    for method in ("coop", "cocoop", "kgcoop", "maple", "ivlp", "vpt", "promptsrc")
    for name in ("base2new", "xd_train", "xd_test", "dg_test", "few_shot")
] + ["scripts/zsclip/zeroshot.sh"]


def run_script(script, *args, env=None, timeout=60):
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(
        ["bash", os.path.join(REPO_ROOT, script), *map(str, args)],
        cwd="/", env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def dry(tmp_path):
    """Run a script with train.py replaced by an echo; returns (result, [parsed commands])."""
    stub = tmp_path / "python-stub"
    stub.write_text(  # each argument shell-quoted, so "(32, 32)" stays one word
        "#!/usr/bin/env bash\n"
        'if [ "$1" = train.py ]; then printf TRAIN; printf " %q" "$@"; echo; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    stub.chmod(0o755)
    output = tmp_path / "output"

    def run(script, *args, **env):
        env = {"PYTHON": str(stub), "OUTPUT": str(output), "DATA": "/data", **env}
        result = run_script(script, *args, env=env)
        commands = [parse_command(line[len("TRAIN "):])
                    for line in result.stdout.splitlines() if line.startswith("TRAIN ")]
        return result, commands

    run.output = str(output)
    return run


def parse_command(line):
    words = shlex.split(line)
    assert words[0] == "train.py"
    flags, opts, i = {}, {}, 1
    while i < len(words):
        if words[i] in ("--eval-only", "--resume"):
            flags[words[i]] = True
            i += 1
        elif words[i].startswith("--"):
            flags[words[i]] = words[i + 1]
            i += 2
        else:
            opts[words[i]] = words[i + 1]
            i += 2
    return {"flags": flags, "opts": opts}


def demo_base_and_new_class_counts(data_root):
    """How many classes the demo's base and new halves have (CoCoOp: base = first ceil(n/2))."""
    with open(os.path.join(data_root, "demo", "split_zhou_Demo.json")) as f:
        classes = len({label for _, label, _ in json.load(f)["train"]})
    return math.ceil(classes / 2), classes - math.ceil(classes / 2)


def fake_checkpoint(model_dir, epoch):
    os.makedirs(os.path.join(model_dir, "prompt_learner"), exist_ok=True)
    open(os.path.join(model_dir, "prompt_learner", f"model.pth.tar-{epoch}"), "w").close()


def test_scripts_parse_and_are_executable():
    for script in SCRIPTS + ["scripts/common.sh"]:
        path = os.path.join(REPO_ROOT, script)
        assert subprocess.run(["bash", "-n", path]).returncode == 0, script
    for script in SCRIPTS:
        assert os.access(os.path.join(REPO_ROOT, script), os.X_OK), script
        text = open(os.path.join(REPO_ROOT, script)).read()
        assert "set -euo pipefail" in text and ". scripts/common.sh" in text, script


@pytest.mark.parametrize("script, dataset, cfg_file, epoch", [
    ("scripts/coop/base2new.sh", "oxford_pets", "CoOp/vit_b16_ctxv1", 200),
    ("scripts/coop/base2new.sh", "imagenet", "CoOp/vit_b16_ep50_ctxv1", 50),
    ("scripts/cocoop/base2new.sh", "caltech101", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", 10),
    ("scripts/kgcoop/base2new.sh", "imagenet", "KgCoOp/vit_b16_ep100_ctxv1", 100),
    ("scripts/maple/base2new.sh", "dtd", "MaPLe/vit_b16_c2_ep5_batch4_2ctx", 5),
    ("scripts/ivlp/base2new.sh", "imagenet", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", 5),
    ("scripts/vpt/base2new.sh", "eurosat", "VPT/vit_b16_c2_ep5_batch4_4", 5),
])
def test_base2new_trains_on_base_and_tests_new(dry, script, dataset, cfg_file, epoch):
    trainer, cfg = cfg_file.split("/")
    common = f"{dataset}/shots_16/{trainer}/{cfg}/seed2"
    train_dir = f"{dry.output}/base2new/train_base/{common}"
    fake_checkpoint(train_dir, epoch)
    result, (train, test) = dry(script, dataset, 2)
    assert result.returncode == 0, result.stderr
    for command in (train, test):
        assert command["flags"]["--trainer"] == trainer
        assert command["flags"]["--config-file"] == f"configs/trainers/{cfg_file}.yaml"
        assert command["flags"]["--dataset-config-file"] == f"configs/datasets/{dataset}.yaml"
        assert command["flags"]["--root"] == "/data" and command["flags"]["--seed"] == "2"
        assert os.path.exists(os.path.join(REPO_ROOT, command["flags"]["--config-file"]))
    assert train["flags"]["--output-dir"] == train_dir
    assert train["opts"] == {"DATASET.NUM_SHOTS": "16", "DATASET.SUBSAMPLE_CLASSES": "base"}
    assert "--eval-only" not in train["flags"]
    assert test["flags"]["--output-dir"] == f"{dry.output}/base2new/test_new/{common}"
    assert test["flags"]["--model-dir"] == train_dir
    assert test["flags"]["--load-epoch"] == str(epoch) and test["flags"]["--eval-only"]
    assert test["opts"]["DATASET.SUBSAMPLE_CLASSES"] == "new"


@pytest.mark.parametrize("method, trainer, cfg, epoch", [
    ("coop", "CoOp", "vit_b16_ep50_ctxv1", 50),
    ("cocoop", "CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", 10),
    ("kgcoop", "KgCoOp", "vit_b16_ep25_ctxv1_cross_datasets", 25),
    ("maple", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets", 2),  # (named ep5, 2 epochs)
    ("ivlp", "IVLP", "vit_b16_c2_ep2_batch4_2+2ctx_cross_datasets", 2),
    ("vpt", "VPT", "vit_b16_c2_ep2_batch4_8ctx_cross_datasets", 2),
])
def test_cross_dataset_and_domain_generalisation(dry, method, trainer, cfg, epoch):
    model_dir = f"{dry.output}/imagenet/{trainer}/{cfg}_16shots/seed1"
    result, (train,) = dry(f"scripts/{method}/xd_train.sh", 1)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--dataset-config-file"] == "configs/datasets/imagenet.yaml"
    assert train["flags"]["--output-dir"] == model_dir
    assert train["opts"] == {"DATASET.NUM_SHOTS": "16", "DATASET.SUBSAMPLE_CLASSES": "all"}

    fake_checkpoint(model_dir, epoch)
    result, (test,) = dry(f"scripts/{method}/xd_test.sh", "dtd", 1)
    assert result.returncode == 0, result.stderr
    assert test["flags"]["--model-dir"] == model_dir
    assert test["flags"]["--load-epoch"] == str(epoch)
    assert test["flags"]["--output-dir"] == f"{dry.output}/evaluation/{trainer}/{cfg}_16shots/dtd/seed1"
    assert test["flags"]["--dataset-config-file"] == "configs/datasets/dtd.yaml"

    result, tests = dry(f"scripts/{method}/dg_test.sh", 1)
    assert result.returncode == 0, result.stderr
    targets = [os.path.basename(t["flags"]["--dataset-config-file"]) for t in tests]
    assert targets == ["imagenetv2.yaml", "imagenet_sketch.yaml", "imagenet_a.yaml", "imagenet_r.yaml"]
    for name in targets:
        assert os.path.exists(os.path.join(REPO_ROOT, "configs", "datasets", name))
    assert {t["flags"]["--model-dir"] for t in tests} == {model_dir}


@pytest.mark.parametrize("dataset, shots, cfg", [
    ("dtd", 1, "rn50_ep50"), ("dtd", 4, "rn50_ep100"), ("dtd", 16, "rn50"), ("imagenet", 16, "rn50_ep50"),
])
def test_coop_few_shot_picks_the_papers_config(dry, dataset, shots, cfg):
    result, (train,) = dry("scripts/coop/few_shot.sh", dataset, shots, 3)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--config-file"] == f"configs/trainers/CoOp/{cfg}.yaml"
    assert train["flags"]["--output-dir"] == f"{dry.output}/{dataset}/CoOp/{cfg}_{shots}shots/seed3"
    assert train["opts"] == {"DATASET.NUM_SHOTS": str(shots), "DATASET.SUBSAMPLE_CLASSES": "all"}


@pytest.mark.parametrize("method, trainer, cfg", [
    ("maple", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx"),
    ("ivlp", "IVLP", "vit_b16_c2_ep5_batch4_2+2ctx"),
    ("vpt", "VPT", "vit_b16_c2_ep5_batch4_4"),
])
def test_deep_prompt_few_shot_uses_the_base2new_config(dry, method, trainer, cfg):
    result, (train,) = dry(f"scripts/{method}/few_shot.sh", "caltech101", 4, 2)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--trainer"] == trainer
    assert train["flags"]["--config-file"] == f"configs/trainers/{trainer}/{cfg}.yaml"
    assert train["flags"]["--output-dir"] == f"{dry.output}/caltech101/{trainer}/{cfg}_4shots/seed2"
    assert train["opts"] == {"DATASET.NUM_SHOTS": "4", "DATASET.SUBSAMPLE_CLASSES": "all"}


@pytest.mark.parametrize("config, epochs, lr, prompts", [
    # MaPLe's official cross-dataset recipe, and the same recipe for IVLP and VPT
    ("MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets", 2, 0.0026,
     {"MAPLE.N_CTX": 2, "MAPLE.PROMPT_DEPTH": 3}),
    ("IVLP/vit_b16_c2_ep2_batch4_2+2ctx_cross_datasets", 2, 0.0026,
     {"IVLP.N_CTX_VISION": 2, "IVLP.N_CTX_TEXT": 2, "IVLP.PROMPT_DEPTH_VISION": 3,
      "IVLP.PROMPT_DEPTH_TEXT": 3}),
    ("VPT/vit_b16_c2_ep2_batch4_8ctx_cross_datasets", 2, 0.0026,
     {"VPT.N_CTX_VISION": 8, "VPT.PROMPT_DEPTH_VISION": 3}),
    # the base-to-new recipes of the MaPLe repo
    ("MaPLe/vit_b16_c2_ep5_batch4_2ctx", 5, 0.0035, {"MAPLE.N_CTX": 2, "MAPLE.PROMPT_DEPTH": 9}),
    ("IVLP/vit_b16_c2_ep5_batch4_2+2ctx", 5, 0.0035,
     {"IVLP.PROMPT_DEPTH_VISION": 12, "IVLP.PROMPT_DEPTH_TEXT": 12}),
    ("VPT/vit_b16_c2_ep5_batch4_4", 5, 0.0025, {"VPT.N_CTX_VISION": 8, "VPT.PROMPT_DEPTH_VISION": 12}),
])
def test_deep_prompt_configs_hold_the_papers_recipes(make_cfg, config, epochs, lr, prompts):
    trainer = config.split("/")[0]
    cfg = make_cfg(trainer, config_file=os.path.join(REPO_ROOT, "configs", "trainers", f"{config}.yaml"))
    assert cfg.OPTIM.MAX_EPOCH == epochs and cfg.OPTIM.LR == pytest.approx(lr)
    assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 4 and cfg.OPTIM.LR_SCHEDULER == "cosine"
    assert cfg.OPTIM.WARMUP_EPOCH == 1 and cfg.MODEL.BACKBONE.NAME == "ViT-B/16"
    for key, value in prompts.items():
        node, leaf = key.split(".")
        assert cfg.TRAINER[node][leaf] == value, key


@pytest.mark.parametrize("subset, folder", [
    ((), "ZeroshotCLIP/vit_b16/eurosat"),
    (("all",), "ZeroshotCLIP/vit_b16/eurosat"),
    (("new",), "base2new/test_new/eurosat/shots_16/ZeroshotCLIP/vit_b16/seed1"),
    (("base",), "base2new/train_base/eurosat/shots_16/ZeroshotCLIP/vit_b16/seed1"),
    (("TEST.BATCH_SIZE", "7"), "ZeroshotCLIP/vit_b16/eurosat"),
])
def test_zeroshot(dry, subset, folder):
    result, (test,) = dry("scripts/zsclip/zeroshot.sh", "eurosat", *subset)
    if subset[:1] == ("TEST.BATCH_SIZE",):
        assert test["opts"].pop("TEST.BATCH_SIZE") == "7"
        subset = ()
    assert result.returncode == 0, result.stderr
    assert test["flags"]["--trainer"] == "ZeroshotCLIP" and test["flags"]["--eval-only"]
    assert test["flags"]["--config-file"] == "configs/trainers/CoOp/vit_b16.yaml"
    assert test["flags"]["--output-dir"] == f"{dry.output}/{folder}"
    assert test["opts"] == {"DATASET.SUBSAMPLE_CLASSES": (subset or ("all",))[0]}


@pytest.mark.slow
def test_epoch_overrides_reach_training_and_the_loaded_epoch(dry):
    train_dir = f"{dry.output}/base2new/train_base/demo/shots_16/CoOp/tiny_vit/seed1"
    fake_checkpoint(train_dir, 3)
    result, (train, test) = dry("scripts/coop/base2new.sh", "demo", 1, "OPTIM.MAX_EPOCH", 3,
                                CFG="tiny_vit")
    assert result.returncode == 0, result.stderr
    assert train["opts"]["OPTIM.MAX_EPOCH"] == "3" and test["flags"]["--load-epoch"] == "3"

    fake_checkpoint(train_dir, 2)
    result, (train, test) = dry("scripts/coop/base2new.sh", "demo", 1, CFG="tiny_vit", EPOCHS="2")
    assert result.returncode == 0, result.stderr
    assert train["opts"]["OPTIM.MAX_EPOCH"] == "2" and test["flags"]["--load-epoch"] == "2"

    # Both given: the trailing override is last on train.py's command line, so it wins.
    result, (train, test) = dry("scripts/coop/base2new.sh", "demo", 1, "OPTIM.MAX_EPOCH", 3,
                                CFG="tiny_vit", EPOCHS="2")
    assert result.returncode == 0, result.stderr
    assert test["flags"]["--load-epoch"] == "3"


def test_bad_input_fails_with_one_clear_line(dry):
    result, _ = dry("scripts/cocoop/base2new.sh", "demo")
    assert result.returncode == 2 and "usage: bash" in result.stderr and "DATASET SEED" in result.stderr
    result, _ = dry("scripts/cocoop/base2new.sh", "demo", 1, CFG="nope")
    assert result.returncode == 2
    assert "no trainer config configs/trainers/CoCoOp/nope.yaml" in result.stderr
    result, _ = dry("scripts/cocoop/xd_test.sh", "nodata", 1)
    assert result.returncode == 2 and "no dataset config configs/datasets/nodata.yaml" in result.stderr
    result, commands = dry("scripts/zsclip/zeroshot.sh", "demo", "bogus")
    assert result.returncode == 2 and "must be base, new or all, got 'bogus'" in result.stderr
    result, commands = dry("scripts/cocoop/xd_test.sh", "dtd", 1)
    assert result.returncode == 2 and not commands
    assert "no checkpoint of epoch 10 under" in result.stderr


@pytest.mark.slow
def test_a_run_with_a_checkpoint_is_resumed_and_any_other_starts_fresh(dry):
    run_dir = f"{dry.output}/demo/CoOp/tiny_vit_2shots/seed1"
    result, (train,) = dry("scripts/coop/few_shot.sh", "demo", 2, 1, CFG="tiny_vit")
    assert result.returncode == 0, result.stderr
    assert "--resume" not in train["flags"]
    assert f"Training a new run in {run_dir}." in result.stdout

    os.makedirs(run_dir)  # killed before its first checkpoint: a log, nothing to resume
    with open(os.path.join(run_dir, "log.txt"), "w") as log:
        log.write("epoch [1/2] batch [1/5]\n")
    result, (train,) = dry("scripts/coop/few_shot.sh", "demo", 2, 1, CFG="tiny_vit")
    assert "--resume" not in train["flags"]

    fake_checkpoint(run_dir, 1)  # killed before its pointer was written: resumed all the same
    result, (train,) = dry("scripts/coop/few_shot.sh", "demo", 2, 1, CFG="tiny_vit")
    assert train["flags"]["--resume"] is True

    with open(os.path.join(run_dir, "prompt_learner", "checkpoint"), "w") as pointer:
        pointer.write("model.pth.tar-1\n")
    result, (train,) = dry("scripts/coop/few_shot.sh", "demo", 2, 1, "OPTIM.LR", "0.1",
                           CFG="tiny_vit")
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--resume"] is True and train["flags"]["--output-dir"] == run_dir
    assert train["opts"]["OPTIM.LR"] == "0.1", "the trailing overrides still reach train.py"
    assert (f"Resuming the interrupted run in {run_dir} from its last checkpoint (--resume)."
            in result.stdout)

    with open(os.path.join(run_dir, "log.txt"), "a") as log:
        log.write("Finish training\n* accuracy: 40.0%\n")
    result, commands = dry("scripts/coop/few_shot.sh", "demo", 2, 1, CFG="tiny_vit")
    assert result.returncode == 0 and not commands and "skipping this run" in result.stdout


def is_done(directory, mode):
    command = f'. scripts/common.sh; rpp_is_done "$1" {mode}'
    return subprocess.run(["bash", "-c", command, "bash", str(directory)],
                          cwd=REPO_ROOT).returncode == 0


def test_a_run_counts_as_done_only_with_a_final_accuracy(tmp_path):
    run = tmp_path / "run"
    assert not is_done(run, "train") and not is_done(run, "eval")
    run.mkdir()
    val_only = "epoch [1/2] ...\nEvaluate on the *val* set\n=> result\n* accuracy: 50.0%\n"
    (run / "log.txt").write_text(val_only)  # crashed after a per-epoch val evaluation
    assert not is_done(run, "train")
    assert is_done(run, "eval")
    (run / "log.txt-2026-01-01-00-00-00").write_text(
        val_only + "Finish training\nEvaluate on the *test* set\n=> result\n* accuracy: 61.0%\n")
    assert is_done(run, "train"), "a re-run's timestamped log counts"


@pytest.mark.slow
def test_base2new_on_demo_runs_then_skips(demo_data_root, tmp_path):
    env = {"DATA": demo_data_root, "OUTPUT": str(tmp_path / "output"), "CFG": "tiny_vit",
           "EPOCHS": "1", "PYTHON": sys.executable}
    first = run_script("scripts/coop/base2new.sh", "demo", 1, env=env, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    common = "demo/shots_16/CoOp/tiny_vit/seed1"
    train_dir = tmp_path / "output" / "base2new" / "train_base" / common
    test_dir = tmp_path / "output" / "base2new" / "test_new" / common
    train_log = (train_dir / "log.txt").read_text()
    test_log = (test_dir / "log.txt").read_text()
    assert "Finish training" in train_log and ACCURACY.search(train_log.split("Finish training")[-1])
    assert ACCURACY.search(test_log)
    assert "model.pth.tar-1" in test_log
    assert re.search(r"SUBSAMPLE_CLASSES: new", test_log)
    base, new = demo_base_and_new_class_counts(demo_data_root)
    assert f"# classes  {base}\n" in train_log and f"# classes  {new}\n" in test_log

    second = run_script("scripts/coop/base2new.sh", "demo", 1, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("skipping this run") == 2, second.stdout
    assert sorted(os.listdir(train_dir)).count("log.txt") == 1
    assert not [f for f in os.listdir(train_dir) + os.listdir(test_dir) if f.startswith("log.txt-")]


@pytest.mark.slow
def test_interrupted_sweep_run_is_resumed_when_the_script_runs_again(demo_data_root, tmp_path):
    env = {"DATA": demo_data_root, "OUTPUT": str(tmp_path / "output"), "CFG": "tiny_vit",
           "PYTHON": sys.executable}
    run_dir = tmp_path / "output" / "demo" / "IVLP" / "tiny_vit_2shots" / "seed1"
    # Epoch 1 of 2 ends with a checkpoint, then the run stops before its final test:
    # what a job killed during epoch 2 leaves behind.
    first = run_script("scripts/ivlp/few_shot.sh", "demo", 2, 1, "TEST.NO_TEST", "True",
                       env=dict(env, EPOCHS="1"), timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"Training a new run in {run_dir}." in first.stdout
    assert (run_dir / "prompt_learner" / "checkpoint").read_text().strip() == "model.pth.tar-1"
    assert not ACCURACY.search(first.stdout) and not is_done(run_dir, "train")

    # Without the sweep's --resume, train.py refuses the folder (nothing is lost).
    second = run_script("scripts/ivlp/few_shot.sh", "demo", 2, 1, env=dict(env, EPOCHS="2"),
                        timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (f"Resuming the interrupted run in {run_dir} from its last checkpoint (--resume)."
            in second.stdout)
    assert "Found checkpoint at" in second.stdout and "Previous epoch: 1" in second.stdout
    assert "epoch [2/2]" in second.stdout and "epoch [1/2]" not in second.stdout
    assert ACCURACY.search(second.stdout.split("Finish training")[-1])
    assert (run_dir / "prompt_learner" / "model.pth.tar-2").is_file()
    assert is_done(run_dir, "train")

    third = run_script("scripts/ivlp/few_shot.sh", "demo", 2, 1, env=dict(env, EPOCHS="2"))
    assert third.returncode == 0 and "skipping this run" in third.stdout, third.stdout


@pytest.mark.slow
def test_maple_base2new_on_demo_end_to_end(demo_data_root, tmp_path):
    env = {"DATA": demo_data_root, "OUTPUT": str(tmp_path / "output"), "CFG": "tiny_vit",
           "EPOCHS": "1", "PYTHON": sys.executable}
    result = run_script("scripts/maple/base2new.sh", "demo", 1, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    common = "demo/shots_16/MaPLe/tiny_vit/seed1"
    train_log = (tmp_path / "output" / "base2new" / "train_base" / common / "log.txt").read_text()
    test_log = (tmp_path / "output" / "base2new" / "test_new" / common / "log.txt").read_text()
    assert "Finish training" in train_log and ACCURACY.search(train_log.split("Finish training")[-1])
    assert "model.pth.tar-1" in test_log and ACCURACY.search(test_log)
    base, new = demo_base_and_new_class_counts(demo_data_root)
    assert "SUBSAMPLE_CLASSES: new" in test_log and f"# classes  {new}\n" in test_log
    assert f"# classes  {base}\n" in train_log
    assert "NAME: MaPLe" in train_log and "PROMPT_DEPTH: 3" in train_log


@pytest.mark.parametrize("spelling", ["imagenet21k", "imagenet_21k", "ImageNet-21K"])
@pytest.mark.parametrize("method, trainer, cfg", [("rpp", "RPP", "vit_b16_in21k"), ("pomp", "POMP", "vit_b16_ep5")])
def test_pretraining_reads_imagenet21k_under_any_spelling_into_one_folder(dry, method, trainer, cfg, spelling):
    model_dir = f"{dry.output}/imagenet21k/{trainer}/{cfg}_16shots/seed1"
    result, (train,) = dry(f"scripts/{method}/pretrain.sh", 1, SOURCE=spelling)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--dataset-config-file"] == "configs/datasets/imagenet21k.yaml"
    assert train["flags"]["--output-dir"] == model_dir
    fake_checkpoint(model_dir, 5)
    result, tests = dry(f"scripts/{method}/dg.sh", 1, SOURCE=spelling)
    assert result.returncode == 0, result.stderr
    assert len(tests) == 4
    for test in tests:  # RPP reads the prompts by a config key, POMP by --model-dir
        assert model_dir in (test["opts"].get("TRAINER.RPP_TRANSFER.PROMPTS"), test["flags"].get("--model-dir"))


def test_the_pretraining_source_defaults_to_imagenet21k(dry):
    result, (train,) = dry("scripts/rpp/pretrain.sh", 1)
    assert result.returncode == 0, result.stderr
    assert train["flags"]["--dataset-config-file"] == "configs/datasets/imagenet21k.yaml"
    assert train["flags"]["--output-dir"] == f"{dry.output}/imagenet21k/RPP/vit_b16_in21k_16shots/seed1"


@pytest.mark.parametrize("typed, stem", [("ImageNet-Sketch", "imagenet_sketch"), ("imagenet-a", "imagenet_a"),
                                         ("Food-101", "food101"), ("dtd", "dtd")])
def test_dataset_arguments_are_read_as_the_config_stem_they_stand_for(dry, typed, stem):
    model_dir = f"{dry.output}/imagenet/CoOp/vit_b16_ep50_ctxv1_16shots/seed1"
    fake_checkpoint(model_dir, 50)
    result, (test,) = dry("scripts/coop/xd_test.sh", typed, 1)
    assert result.returncode == 0, result.stderr
    assert test["flags"]["--dataset-config-file"] == f"configs/datasets/{stem}.yaml"
    assert test["flags"]["--output-dir"] == f"{dry.output}/evaluation/CoOp/vit_b16_ep50_ctxv1_16shots/{stem}/seed1"
    result, (test,) = dry("scripts/zsclip/zeroshot.sh", typed)
    assert test["flags"]["--output-dir"] == f"{dry.output}/ZeroshotCLIP/vit_b16/{stem}"


def test_an_unknown_dataset_stops_the_sweep_before_any_run(dry):
    result, commands = dry("scripts/rpp/pretrain.sh", 1, SOURCE="imagenet_22k")
    assert result.returncode == 2 and not commands
    assert "no dataset config configs/datasets/imagenet_22k.yaml" in result.stderr


@pytest.mark.slow
def test_backbone_moves_train_and_test_onto_another_clip_and_trailing_opts_still_win(dry):
    train_dir = f"{dry.output}/base2new/train_base/oxford_pets/shots_16/RPP/vit_b16_base2new/seed1"
    fake_checkpoint(train_dir, 5)
    result, (train, test) = dry("scripts/rpp/base2new.sh", "oxford_pets", 1, "TRAINER.RPP.PROMPT_DEPTH_TEXT", 2,
                                BACKBONE="tiny-vit", COMPARE="")
    assert result.returncode == 0, result.stderr
    for command in (train, test):
        assert command["opts"]["MODEL.BACKBONE.NAME"] == "tiny-vit"
        assert command["opts"]["INPUT.SIZE"] == "(32, 32)"  # tiny-vit's image_size (models/backbones.py)
        assert command["opts"]["TRAINER.RPP.PROMPT_DEPTH_VISION"] == "3"  # 9 in the recipe, 3 layers
    words = shlex.split(result.stdout.splitlines()[[i for i, line in enumerate(result.stdout.splitlines())
                                                    if line.startswith("TRAIN ")][0]][len("TRAIN "):])
    # the user's opt comes after BACKBONE's cap, so train.py (last one wins) uses 2
    assert words.index("2") > words.index("3") and words[words.index("2") - 1] == "TRAINER.RPP.PROMPT_DEPTH_TEXT"
    assert result.stdout.count("BACKBONE=tiny-vit: MODEL.BACKBONE.NAME tiny-vit INPUT.SIZE (32, 32)") == 1

    result, commands = dry("scripts/coop/base2new.sh", "dtd", 1, BACKBONE="no-such-clip")
    assert result.returncode == 2 and not commands
    assert result.stderr.strip().startswith("error: BACKBONE=no-such-clip: Unknown backbone")
