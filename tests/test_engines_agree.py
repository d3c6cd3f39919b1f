"""train.py on the real Dassl and on the bundled engine: the same run logs the same steps
and the same final accuracy.

Marked ``real_dassl``: the default run skips this file and ``tests/test_real_dassl.py``
runs it in a process on the real engine; each test starts train.py once per engine.
"""
import os
import re
import subprocess
import sys

import pytest

import engine
from conftest import DEMO_DATASET_CONFIG, REPO_ROOT
from tests.fixtures.real_dassl import ONLY_ON_REAL_DASSL, real_dassl_env

pytestmark = pytest.mark.real_dassl
if engine.BACKEND != "dassl":
    pytest.skip(ONLY_ON_REAL_DASSL, allow_module_level=True)

# The base-class half of base-to-new on the demo world with the shipped demo CLIP, cut to
# 2 epochs of 2 batches (15 classes x 2 shots in batches of 12) with a log line per batch:
# it covers the warm-up and the first cosine step, the sampler order, the augmentations,
# the checkpoint and the test pass.
SHORT_RUN = ["DATASET.SUBSAMPLE_CLASSES", "base", "DATASET.NUM_SHOTS", "2",
             "DATALOADER.TRAIN_X.BATCH_SIZE", "12", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "1"]
STEPS = 2 * 2
# Dassl's per-step line; time, data and eta are wall-clock and differ between any two runs.
STEP_LINE = re.compile(r"^(epoch \[\d+/\d+\] batch \[\d+/\d+\]) time \S+ \(\S+\) data \S+ \(\S+\) "
                       r"(.*) eta \S+$", re.M)
RESULT_BLOCK = re.compile(r"^=> result\n((?:\* .*\n)+)", re.M)


def bundled_env():
    return dict(os.environ, RPP_ENGINE="bundled")


def start_train_py(env, trainer, data_root, output_dir):
    config = os.path.join(REPO_ROOT, "configs", "trainers", trainer, "demo_clip.yaml")
    argv = [sys.executable, os.path.join(REPO_ROOT, "train.py"), "--root", data_root,
            "--trainer", trainer, "--seed", "1", "--dataset-config-file", DEMO_DATASET_CONFIG,
            "--config-file", config, "--output-dir", str(output_dir), *SHORT_RUN]
    # One thread each (both engines alike): the two runs go side by side, and two torch
    # thread pools on two cores would spin against each other.
    env = dict(env, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    with open(f"{output_dir}.stderr", "w") as stderr:  # the log is OUTPUT_DIR/log.txt
        return subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=stderr)


def steps_and_result(log):
    """The per-step lines without their timings, and the final result block."""
    steps = [" ".join(match) for match in STEP_LINE.findall(log)]
    results = RESULT_BLOCK.findall(log)
    return steps, results[-1] if results else None


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["CoOp", "RPP"])
def test_train_py_logs_the_same_steps_and_accuracy_on_both_engines(trainer, demo_data_root,
                                                                     tmp_path):
    runs = {name: start_train_py(env, trainer, demo_data_root, tmp_path / name)
            for name, env in (("dassl", real_dassl_env()), ("bundled", bundled_env()))}
    logs = {}
    try:
        for name, proc in runs.items():
            if proc.wait(timeout=600) != 0:
                with open(tmp_path / f"{name}.stderr") as f:
                    pytest.fail(f"train.py {trainer} on {name}:\n{f.read()[-3000:]}",
                                pytrace=False)
            with open(tmp_path / name / "log.txt") as f:
                logs[name] = f.read()
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, log in logs.items():
        assert f"Engine backend: {name}\n" in log

    dassl_steps, dassl_result = steps_and_result(logs["dassl"])
    bundled_steps, bundled_result = steps_and_result(logs["bundled"])
    assert len(dassl_steps) == STEPS, logs["dassl"][-3000:]
    losses = {re.search(r" loss (\S+) ", line).group(1) for line in dassl_steps}
    assert len(losses) == STEPS, "the same loss at every step: nothing was trained"
    assert dassl_steps == bundled_steps
    assert dassl_result is not None and "* accuracy: " in dassl_result
    assert dassl_result == bundled_result
