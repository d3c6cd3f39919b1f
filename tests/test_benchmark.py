"""tools/benchmark.py: a tiny run writes every section with positive numbers (no timing bars)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

TINY_RUN = [
    "--backbone", "tiny-vit", "--device", "cpu", "--trainers", "CoOp", "MaPLe", "NoSuchTrainer",
    "--batch-size", "2", "--steps", "1", "--warmup", "0", "--train-classes", "10",
    "--eval-classes", "20", "--eval-batch-size", "4", "--eval-batches", "1",
    "--class-counts", "20", "40", "--sampling-k", "10", "--max-step-seconds", "1000",
    "--data-images", "8", "--data-image-size", "48", "--workers", "0",
]


def positive(value):
    return isinstance(value, (int, float)) and value > 0


@pytest.mark.slow
def test_tiny_run_writes_every_section(tmp_path):
    output = tmp_path / "bench.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", RPP_ENGINE="bundled")
    run = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "tools", "benchmark.py"), *TINY_RUN,
         "--work-dir", str(tmp_path / "work"), "--output", str(output)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "== ratios ==" in run.stdout
    results = json.loads(output.read_text())
    assert results["backbone"] == "tiny-vit" and results["device"] == "cpu"

    train = results["train"]
    assert train["baseline"] == "CoOp" and sorted(train["trainers"]) == ["CoOp", "MaPLe"]
    assert train["notes"] == ["NoSuchTrainer: skipped, trainer not registered"]
    for result in train["trainers"].values():
        for key in ("seconds_per_image", "images_per_s", "peak_mb", "time_ratio", "memory_ratio"):
            assert positive(result[key]), (key, result)
    assert train["trainers"]["CoOp"]["time_ratio"] == 1.0

    evaluation = results["eval"]
    assert evaluation["num_classes"] == 20
    for key in ("cached_images_per_s", "per_batch_images_per_s", "speedup"):
        assert positive(evaluation[key])

    classes = results["classes"]
    assert sorted(classes["sampling_on"]) == sorted(classes["sampling_off"]) == ["20", "40"]
    for table in (classes["sampling_on"], classes["sampling_off"]):
        for result in table.values():
            assert positive(result["peak_mb"]) and positive(result["memory_ratio"])

    data = results["data"]
    assert positive(data["loader_images_per_s"])
    assert data["workers"] == 0 and data["images"] == 8
    assert set(data["loader_to_model"]) == {"CoOp training", "MaPLe training",
                                            "evaluation (cached)"}
    assert all(positive(v) for v in data["loader_to_model"].values())


def test_a_size_over_budget_is_estimated_from_the_measured_runs():
    sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
    from benchmark import estimate_without_sampling

    sampled = {"peak_mb": 1100.0, "step_mb": 100.0, "first_step_s": 2.0}
    # no run without sampling yet: the per-step part scales from K to all classes
    assert estimate_without_sampling(sampled, 1000, 10000, None) == {
        "peak_mb": 1000.0 + 100.0 * 10, "first_step_s": 20.0}
    # from a smaller run without sampling: scaled by the class ratio
    full = {"peak_mb": 3000.0, "step_mb": 2000.0, "first_step_s": 30.0, "num_classes": 1000}
    assert estimate_without_sampling(sampled, 1000, 21000, full) == {
        "peak_mb": 1000.0 + 2000.0 * 21, "first_step_s": 630.0}


def test_peak_memory_counts_a_large_allocation():
    sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
    import torch
    from benchmark import PeakMemory

    with PeakMemory("cpu") as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        del block
    assert memory.step_mb >= 60
    assert memory.peak_mb >= memory.step_mb
