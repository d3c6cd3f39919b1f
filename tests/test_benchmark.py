"""tools/benchmark.py: a tiny run writes every section; the arithmetic behind the printed
ratios and projections, checked against hand computations (no timing bars)."""
import math
import os
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
import benchmark  # noqa: E402

TINY_RUN = [
    "--backbone", "tiny-vit", "--device", "cpu", "--trainers", "CoOp", "MaPLe", "NoSuchTrainer",
    "--batch-size", "1", "--repeats", "2", "--warmup", "0", "--train-classes", "8",
    "--compare-classes", "8", "--compare-repeats", "1",
    "--eval-classes", "12", "--eval-batch-size", "2", "--eval-batches", "1",
    "--class-counts", "8", "16", "--sampling-k", "4", "--max-step-seconds", "1000",
    "--recipe-classes", "12", "--recipe-batch", "1", "--recipe-k", "4", "--recipe-repeats", "1",
    "--data-images", "4", "--data-image-size", "40", "--workers", "0", "--no-isolate",
]


def positive(value):
    return isinstance(value, (int, float)) and value > 0


def test_tiny_run_writes_every_section(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert benchmark.main([*TINY_RUN, "--work-dir", str(tmp_path / "work"), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "== ratios ==" in printed and "official stand-in" in printed and "target" in printed
    import json

    results = json.loads(output.read_text())
    assert results["backbone"] == "tiny-vit" and results["device"] == "cpu"

    train = results["train"]
    assert train["baseline"] == "CoOp" and sorted(train["trainers"]) == ["CoOp", "MaPLe"]
    assert train["notes"] == ["NoSuchTrainer: skipped, trainer not registered"]
    for result in train["trainers"].values():
        for key in ("seconds_per_image", "images_per_s", "peak_mb", "time_ratio", "memory_ratio"):
            assert positive(result[key]), (key, result)
        step = result["step"]
        assert step["repeats"] == 2 and len(step["samples_s"]) == 2
        assert step["min_s"] <= step["median_s"] <= step["max_s"]
    assert train["trainers"]["CoOp"]["time_ratio"] == 1.0

    compare = results["compare"]
    coop = compare["official_coop"]
    assert positive(coop["speedup"]) and coop["speedup"] == coop["official_stand_in"]["ratio_to_ours"]
    pair = compare["rpp_vs_maple"]
    assert pair["maple_overrides"] == ["TRAINER.MAPLE.N_CTX", 4, "TRAINER.MAPLE.PROMPT_DEPTH", 3]
    assert positive(pair["ratio"])

    evaluation = results["eval"]
    assert evaluation["num_classes"] == 12
    for key in ("cached_images_per_s", "per_batch_images_per_s", "speedup"):
        assert positive(evaluation[key])

    classes = results["classes"]
    assert sorted(classes["sampling_on"]) == sorted(classes["sampling_off"]) == ["16", "8"]
    for table in (classes["sampling_on"], classes["sampling_off"]):
        for result in table.values():
            assert positive(result["peak_mb"]) and positive(result["memory_ratio"])
    # where both sections measure the same thing (CoOp, 8 classes, no sampling) they agree
    assert classes["sampling_off"]["8"]["seconds_per_image"] == train["trainers"]["CoOp"]["seconds_per_image"]

    recipe = results["recipe"]
    assert not recipe["at_recipe_size"] and sorted(recipe["trainers"]) == ["POMP", "RPP"]
    for settings in recipe["trainers"].values():
        for label in ("checkpointing_off", "checkpointing_on"):
            measured = settings[label]
            assert measured["images_per_step"] == 4  # 1 image x 4 views
            assert positive(measured["text"]["median_s"]) and measured["recipe"]["estimated"]
    projection = results["projection"]
    assert projection["steps"] == 10450 * 16 // 32 * 5
    for settings in projection["trainers"].values():
        assert all(positive(p["hours"]) for p in settings.values())

    data = results["data"]
    assert positive(data["loader_images_per_s"]) and data["views"] == 4
    assert data["workers"] == 0 and data["images"] == 4
    assert set(data["loader_to_model"]) == {"CoOp training", "MaPLe training",
                                            "evaluation (cached)"}


def test_projection_turns_step_time_and_loader_rate_into_hours():
    recipe = {"trainers": {"RPP": {
        "checkpointing_off": {"recipe": {"step_s": 2.0, "peak_mb": 1000.0, "estimated": False}},
        "checkpointing_on": {"recipe": {"step_s": 0.5, "peak_mb": 500.0, "estimated": False}}}}}
    steps = 10450 * 16 // 32 * 5
    data = {"views": 4, "workers": 8, "loader_images_per_s": 32.0}  # 1 s per batch of 32
    result = benchmark.projection(recipe, data)["trainers"]["RPP"]
    assert result["checkpointing_off"]["hours"] == pytest.approx(steps * 2.0 / 3600)
    assert result["checkpointing_off"]["bound_by"] == "model"
    assert result["checkpointing_on"]["hours"] == pytest.approx(steps * 1.0 / 3600)  # waits for data
    assert result["checkpointing_on"]["bound_by"] == "loader"
    serial = benchmark.projection(recipe, dict(data, workers=0))["trainers"]["RPP"]
    assert serial["checkpointing_off"]["hours"] == pytest.approx(steps * 3.0 / 3600)
    model_only = benchmark.projection(recipe, None)["trainers"]["RPP"]
    assert model_only["checkpointing_on"]["hours"] == pytest.approx(steps * 0.5 / 3600)


def test_a_smaller_measurement_is_scaled_to_the_recipe_by_parts():
    measured = {"step": {"median_s": 3.0}, "images_per_step": 8, "peak_mb": 1500.0,
                "step_mb": 500.0, "text": {"median_s": 1.0, "step_mb": 100.0, "classes_encoded": 100}}
    scaled = benchmark.scale_to_recipe(measured, at_recipe=False)
    # image part: (3 - 1) s for 8 images -> 128 images; text part: 1 s for 100 classes -> 1000
    assert scaled["step_s"] == pytest.approx(2.0 * 16 + 1.0 * 10)
    assert scaled["peak_mb"] == pytest.approx(1000.0 + 400.0 * 16 + 100.0 * 10)
    assert scaled["estimated"]
    as_measured = benchmark.scale_to_recipe(measured, at_recipe=True)
    assert as_measured["step_s"] == 3.0 and as_measured["peak_mb"] == 1500.0


def test_alternated_runs_in_turn_and_takes_the_median_of_per_round_ratios(monkeypatch):
    calls = []
    durations = iter([1.0, 3.0, 2.0, 2.0, 1.0, 9.0])  # rounds: a, b per round
    monkeypatch.setattr(benchmark, "timed_once", lambda device, fn: (fn(), next(durations))[1])
    result = benchmark.alternated("cpu", {"a": lambda: calls.append("a"),
                                          "b": lambda: calls.append("b")}, warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up round, three timed ones
    assert result["a"]["median_s"] == 1.0 and result["b"]["median_s"] == 3.0
    assert result["b"]["ratio_rounds"] == [3.0, 1.0, 9.0]
    assert result["b"]["ratio_to_a"] == 3.0
    assert result["a"]["spread"] == pytest.approx((2.0 - 1.0) / 1.0)


def test_official_stand_in_switches_both_paths_and_restores():
    from models import prompted_attention
    from models.text_encoder import TextEncoder

    assert TextEncoder.trim_to_eot and prompted_attention._FUSED["enabled"]
    with benchmark.official_stand_in():
        assert not TextEncoder.trim_to_eot and not prompted_attention._FUSED["enabled"]
    assert TextEncoder.trim_to_eot and prompted_attention._FUSED["enabled"]


def test_synthetic_classes_carry_real_names():
    from open_clip import IMAGENET_CLASSNAMES

    names = benchmark.synthetic_classnames(1002)
    assert names[:1000] == list(IMAGENET_CLASSNAMES) and names[1000:] == names[:2]


def test_a_size_over_budget_is_estimated_from_the_measured_runs():
    sampled = {"peak_mb": 1100.0, "step_mb": 100.0, "first_step_s": 2.0}
    # no run without sampling yet: the per-step part scales from K to all classes
    assert benchmark.estimate_without_sampling(sampled, 1000, 10000, None) == {
        "peak_mb": 1000.0 + 100.0 * 10, "first_step_s": 20.0}
    # from a smaller run without sampling: scaled by the class ratio
    full = {"peak_mb": 3000.0, "step_mb": 2000.0, "first_step_s": 30.0, "num_classes": 1000}
    assert benchmark.estimate_without_sampling(sampled, 1000, 21000, full) == {
        "peak_mb": 1000.0 + 2000.0 * 21, "first_step_s": 630.0}


def test_peak_memory_counts_a_large_allocation():
    import torch

    with benchmark.PeakMemory("cpu") as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
        del block
    assert memory.step_mb >= 60
    assert memory.peak_mb >= memory.step_mb
    assert not math.isnan(memory.peak_mb)
