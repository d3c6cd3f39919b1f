"""tools/parse_results.py on synthetic output trees written in the sweeps' layout.

The logs copy what train.py prints (the evaluator's result block, "Finish training",
per-epoch lines), plus the official KgCoOp-style "Finished training" variant. Expected
values are worked out by hand in the comments.
"""
import csv
import io
import math
import os

import pytest

from tools import parse_results
from tools.results.aggregate import average_cell, harmonic_mean, seed_cell
from tools.results.collect import Method
from tools.results.logs import read_log, read_run

HEADER = """\
Setting fixed seed: 1
***************
** Arguments **
***************
backbone: 
config_file: configs/trainers/CoOp/vit_b16.yaml
************
** Config **
************
DATALOADER:
  NUM_WORKERS: 8
Engine backend: bundled
Loading trainer: CoOp
Loading dataset: DescribableTextures
---------  ----
Dataset    DTD
# classes  24
---------  ----
Loading CLIP (backbone: ViT-B/16)
Loading evaluator: Classification
"""


def result_block(accuracy, decimals=1):
    return (
        "=> result\n* total: 1,692\n* correct: 1,000\n"
        f"* accuracy: {accuracy:.{decimals}f}%\n* error: {100 - accuracy:.{decimals}f}%\n"
        "* macro_f1: 50.0%\n"
    )


def epoch_line(epoch, max_epoch):
    return (f"epoch [{epoch}/{max_epoch}] batch [5/5] time 0.074 (0.139) data 0.044 (0.040) "
            "loss 2.8552 (2.8413) acc 6.2500 (10.0000) lr 2.0000e-03 eta 0:00:02\n")


def training_log(accuracy, val_accuracies=(), finish="Finish training", decimals=1):
    """A training run as train.py logs it; val_accuracies: evaluations during training."""
    text = HEADER + "Training from scratch (RESUME is not set)\n"
    max_epoch = max(2, len(val_accuracies))
    for epoch in range(1, max_epoch + 1):
        text += epoch_line(epoch, max_epoch)
        if epoch <= len(val_accuracies):
            text += "Evaluate on the *val* set\n" + result_block(val_accuracies[epoch - 1])
    text += f"Checkpoint saved to out/prompt_learner/model.pth.tar-{max_epoch}\n"
    if accuracy is None:  # interrupted before the end
        return text
    text += f"{finish}\nDeploy the last-epoch model\nEvaluate on the *test* set\n"
    return text + result_block(accuracy, decimals) + "Elapsed: 0:01:02\n"


def eval_log(accuracy):
    return (HEADER + "Loading weights to prompt_learner from \"out/prompt_learner/model.pth.tar-5\" "
            "(epoch = 5)\nEvaluate on the *test* set\n" + result_block(accuracy))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_base2new(output, trainer, cfg, dataset, base, new, shots=16):
    """base / new: {seed: accuracy, or a log text for odd cases}."""
    common = os.path.join(dataset, f"shots_{shots}", trainer, cfg)
    for split, results, make_log in (("train_base", base, training_log), ("test_new", new, eval_log)):
        for seed, result in results.items():
            text = result if isinstance(result, str) else make_log(result)
            write(os.path.join(output, "base2new", split, common, f"seed{seed}", "log.txt"), text)


def run_cli(capsys, *argv):
    code = parse_results.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def csv_rows(text):
    return {(r["method"], r["dataset"], r["metric"]): r for r in csv.DictReader(io.StringIO(text))}


# ---------------------------------------------------------------- reading logs

def test_final_accuracy_is_the_one_after_finish_training_not_the_val_results():
    assert read_log(training_log(71.2, val_accuracies=[90.0, 95.0])).accuracy == 71.2


def test_official_finished_training_line_and_two_decimal_results_are_read():
    log = training_log(63.47, val_accuracies=[80.0], finish="Finished training", decimals=2)
    assert read_log(log).accuracy == 63.47


def test_eval_only_log_is_its_result_block():
    assert read_log(eval_log(45.5)).accuracy == 45.5


def test_interrupted_training_with_val_results_has_no_result():
    result = read_log(training_log(None, val_accuracies=[88.0, 89.0]))
    assert result.accuracy is None and result.problem == "training did not finish"


def test_finished_training_without_a_test_has_no_result():
    result = read_log(training_log(None) + "Finish training\nElapsed: 0:00:10\n")
    assert result.accuracy is None and "after 'Finish training'" in result.problem


def test_newest_finished_log_wins_and_an_unfinished_rerun_is_skipped(tmp_path):
    run = tmp_path / "seed1"
    write(str(run / "log.txt"), training_log(50.0))
    write(str(run / "log.txt-2026-01-02-10-00-00"), training_log(60.0))
    write(str(run / "log.txt-2026-01-10-09-00-00"), training_log(None))  # newest, interrupted
    result = read_run(str(run))
    assert result.accuracy == 60.0
    assert result.log.endswith("log.txt-2026-01-02-10-00-00")
    write(str(run / "log.txt-2026-01-11-09-00-00"), training_log(70.0))
    assert read_run(str(run)).accuracy == 70.0


def test_run_folder_without_logs_says_so(tmp_path):
    (tmp_path / "seed1").mkdir()
    assert read_run(str(tmp_path / "seed1")).problem == "no log.txt"
    assert read_run(str(tmp_path / "seed2")).problem == "missing"


# ---------------------------------------------------------------- statistics

def test_std_is_the_sample_std_over_seeds():
    cell = seed_cell([90.0, 92.0, 94.0], expected_seeds=3)
    assert cell.mean == 92.0
    assert cell.std == pytest.approx(2.0)  # population std would be 1.633
    assert seed_cell([90.0], 1).std is None
    assert seed_cell([70.0, 72.0], 3).incomplete


def test_hm_and_averages():
    assert harmonic_mean(92.0, 81.0) == pytest.approx(14904 / 173)
    assert average_cell([seed_cell([1.0], 1), seed_cell([], 1)]).missing


def test_method_spec_forms():
    assert Method.parse("CoOp") == Method("CoOp", "CoOp", "*")
    assert Method.parse("CoOp/vit_b16_ctxv1") == Method("CoOp", "CoOp", "vit_b16_ctxv1")
    assert Method.parse("Ours=RPP/vit_b16") == Method("Ours", "RPP", "vit_b16")


# ---------------------------------------------------------------- base-to-new

@pytest.fixture
def base2new_tree(tmp_path):
    """CoOp and MaPLe on Caltech101 and DTD, seeds 1-3; MaPLe's DTD seed 3 is interrupted."""
    out = str(tmp_path / "output")
    write_base2new(out, "CoOp", "vit_b16_ctxv1", "caltech101",
                   base={1: 90.0, 2: 92.0, 3: 94.0}, new={1: 80.0, 2: 80.0, 3: 83.0})
    write_base2new(out, "CoOp", "vit_b16_ctxv1", "dtd",
                   base={1: 60.0, 2: training_log(62.0, [99.0], finish="Finished training"), 3: 64.0},
                   new={1: 40.0, 2: 50.0, 3: 45.0})
    write_base2new(out, "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "caltech101",
                   base={1: 95.0, 2: 95.0, 3: 95.0}, new={1: 90.0, 2: 90.0, 3: 90.0})
    write_base2new(out, "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "dtd",
                   base={1: 70.0, 2: 72.0, 3: training_log(None, [80.0])}, new={1: 50.0, 2: 50.0, 3: 50.0})
    return out


def test_base2new_csv_means_std_hm_average_and_best(base2new_tree, capsys):
    out, err = run_cli(capsys, "base2new", "--output", base2new_tree, "--method", "CoOp",
                       "--method", "MaPLe", "--datasets", "caltech101", "dtd", "--format", "csv")
    rows = csv_rows(out)
    coop_base = rows["CoOp", "caltech101", "base"]
    assert (coop_base["mean"], coop_base["std"], coop_base["seeds"], coop_base["status"]) == (
        "92.0", "2.0", "3", "ok")
    assert float(rows["CoOp", "caltech101", "new"]["std"]) == pytest.approx(math.sqrt(3), abs=1e-4)
    assert float(rows["CoOp", "caltech101", "hm"]["mean"]) == pytest.approx(86.1503, abs=1e-4)  # 14904/173
    assert float(rows["CoOp", "dtd", "hm"]["mean"]) == pytest.approx(52.1495, abs=1e-4)  # 5580/107
    # Average: Base (92+62)/2 = 77, New (81+45)/2 = 63, HM(77, 63) = 69.3; the mean of the
    # per-dataset HMs (69.15) is not what the papers report.
    assert [rows["CoOp", "average", m]["mean"] for m in ("base", "new", "hm")] == ["77.0", "63.0", "69.3"]
    # MaPLe's DTD Base has 2 of 3 seeds: mean 71, std sqrt(2), and everything built on it is partial.
    maple_dtd = rows["MaPLe", "dtd", "base"]
    assert (maple_dtd["mean"], maple_dtd["std"], maple_dtd["seeds"], maple_dtd["status"]) == (
        "71.0", "1.4142", "2", "incomplete")
    assert rows["MaPLe", "average", "hm"]["mean"] == str(round(11620 / 153, 4))  # HM(83, 70)
    assert rows["MaPLe", "average", "hm"]["status"] == "incomplete"
    # Best per column: MaPLe on Caltech101 Base, CoOp nowhere on Base.
    assert rows["MaPLe", "caltech101", "base"]["best"] == "1"
    assert rows["CoOp", "caltech101", "base"]["best"] == "0"
    assert rows["MaPLe", "average", "hm"]["best"] == "1"
    # Notes go to stderr with CSV, the interrupted run named.
    assert "Missing or unfinished runs (1):" in err
    assert "MaPLe dtd base seed3: training did not finish (log.txt)" in err
    assert "Summary: base2new: 2 methods, 23 of 24 runs read with a final result; 1 missing" in err


def test_base2new_text_table_marks_best_and_incomplete(base2new_tree, capsys):
    out, _ = run_cli(capsys, "base2new", "--output", base2new_tree, "--method", "CoOp",
                     "--method", "MaPLe", "--datasets", "caltech101", "dtd")
    lines = out.splitlines()
    caltech_coop = next(line for line in lines if line.startswith("Caltech101"))
    assert caltech_coop.split()[:4] == ["Caltech101", "CoOp", "92.00", "±"]
    assert "95.00 ± 0.00 *" in out
    assert "71.00 ± 1.41 [2/3 seeds]" in out
    assert "69.30 [partial]" not in out and "69.30" in out
    assert "75.95 [partial] *" in out
    assert "Missing or unfinished runs (1):" in out
    assert out.rstrip().splitlines()[-1].startswith("Summary: base2new")


def test_markdown_bolds_the_best_and_published_rows_cite_their_source(base2new_tree, capsys):
    out, _ = run_cli(capsys, "base2new", "--output", base2new_tree, "--method", "CoOp",
                     "--datasets", "caltech101", "dtd", "--reference", "CoOp", "--format", "markdown")
    assert "| Dataset" in out and "|:--" in out.replace("|---", "|:--")
    # Published CoOp on Caltech101 (PromptKD table): Base 98.00, New 89.81, HM 93.73.
    assert "| CoOp (published) | **98.00** | **89.81** | **93.73** |" in " ".join(out.split())
    assert "CoOp (published): Per dataset: PromptKD repository image" in out


def test_missing_dataset_makes_the_average_missing(tmp_path, capsys):
    out_dir = str(tmp_path / "output")
    from tools.results.catalog import BASE2NEW_DATASETS

    for dataset in BASE2NEW_DATASETS:
        if dataset != "eurosat":
            write_base2new(out_dir, "CoOp", "vit_b16_ctxv1", dataset, base={1: 80.0}, new={1: 70.0})
    out, _ = run_cli(capsys, "base2new", "--output", out_dir, "--method", "CoOp", "--format", "csv")
    rows = csv_rows(out)
    assert len([k for k in rows if k[2] == "base"]) == 12  # 11 datasets + the average
    assert rows["CoOp", "eurosat", "base"]["status"] == "missing"
    assert [rows["CoOp", "average", m]["status"] for m in ("base", "new", "hm")] == ["missing"] * 3
    assert rows["CoOp", "average", "base"]["mean"] == ""
    text, _ = run_cli(capsys, "base2new", "--output", out_dir, "--method", "CoOp")
    average_row = next(line for line in text.splitlines() if line.startswith("Average"))
    assert average_row.split() == ["Average", "CoOp", "missing", "missing", "missing"]
    assert "CoOp eurosat base (all seeds): missing: no folder" in text
    assert "CoOp eurosat new (all seeds): missing: no folder" in text


def test_config_glob_per_dataset_and_ambiguity(tmp_path, capsys):
    out_dir = str(tmp_path / "output")
    # CoOp's sweep uses another config on ImageNet than elsewhere.
    write_base2new(out_dir, "CoOp", "vit_b16_ep50_ctxv1", "imagenet", base={1: 70.0}, new={1: 60.0})
    write_base2new(out_dir, "CoOp", "vit_b16_ctxv1", "dtd", base={1: 80.0}, new={1: 40.0})
    out, _ = run_cli(capsys, "base2new", "--output", out_dir, "--method", "CoOp",
                     "--datasets", "imagenet", "dtd", "--format", "csv")
    assert csv_rows(out)["CoOp", "average", "base"]["mean"] == "75.0"
    write_base2new(out_dir, "CoOp", "vit_b16_ep10", "dtd", base={1: 10.0}, new={1: 10.0})
    out, err = run_cli(capsys, "base2new", "--output", out_dir, "--method", "CoOp",
                       "--datasets", "imagenet", "dtd", "--format", "csv")
    assert csv_rows(out)["CoOp", "dtd", "base"]["status"] == "missing"
    assert "ambiguous" in err and "vit_b16_ep10" in err


# ---------------------------------------------------------------- cross-dataset, DG, few-shot, --dir

def test_cross_dataset_average_is_over_the_targets_only(tmp_path, capsys):
    out_dir = str(tmp_path / "output")
    source = os.path.join(out_dir, "imagenet", "CoOp", "vit_b16_ep50_16shots")
    for seed, acc in {1: 70.0, 2: 71.0, 3: 72.0}.items():
        write(os.path.join(source, f"seed{seed}", "log.txt"), training_log(acc))
    targets = {"caltech101": [90.0, 91.0, 92.0], "dtd": [40.0, 44.0, 42.0]}
    for dataset, accs in targets.items():
        for seed, acc in enumerate(accs, start=1):
            write(os.path.join(out_dir, "evaluation", "CoOp", "vit_b16_ep50_16shots", dataset,
                               f"seed{seed}", "log.txt"), eval_log(acc))
    out, _ = run_cli(capsys, "xd", "--output", out_dir, "--method", "CoOp/vit_b16_ep50",
                     "--datasets", "caltech101", "dtd", "--format", "csv")
    rows = csv_rows(out)
    assert rows["CoOp", "imagenet", "accuracy"]["mean"] == "71.0"
    assert rows["CoOp", "dtd", "accuracy"]["std"] == "2.0"
    assert rows["CoOp", "average", "accuracy"]["mean"] == "66.5"  # (91 + 42) / 2, source excluded
    text, _ = run_cli(capsys, "xd", "--output", out_dir, "--method", "CoOp/vit_b16_ep50",
                      "--datasets", "caltech101", "dtd")
    assert "ImageNet (source)" in text and "Average: over the 2 targets." in text


@pytest.mark.parametrize("spelling", ["imagenet21k", "imagenet_21k", "ImageNet-21K"])
def test_the_21k_source_is_read_under_any_spelling_a_user_types(tmp_path, capsys, spelling):
    # The pre-training sweeps write OUTPUT/imagenet21k/... (the config stem); the README once
    # said imagenet_21k, so that spelling (and the paper's) must find the same runs.
    out_dir = str(tmp_path / "output")
    write(os.path.join(out_dir, "imagenet21k", "RPP", "vit_b16_in21k_16shots", "seed1", "log.txt"),
          training_log(33.0))
    write(os.path.join(out_dir, "evaluation", "RPP", "vit_b16_in21k_16shots", "dtd", "seed1", "log.txt"),
          eval_log(45.0))
    out, _ = run_cli(capsys, "xd", "--source", spelling, "--output", out_dir, "--method", "RPP/vit_b16_in21k",
                     "--datasets", "DTD", "--format", "csv")
    rows = csv_rows(out)
    assert rows["RPP", "imagenet21k", "accuracy"]["mean"] == "33.0"
    assert rows["RPP", "dtd", "accuracy"]["mean"] == "45.0"
    text, _ = run_cli(capsys, "xd", "--source", spelling, "--output", out_dir, "--method", "RPP/vit_b16_in21k",
                      "--datasets", "dtd")
    assert "ImageNet-21K (source)" in text


def test_dg_reads_the_four_imagenet_variants(tmp_path, capsys):
    out_dir = str(tmp_path / "output")
    write(os.path.join(out_dir, "imagenet", "RPP", "vit_b16_16shots", "seed1", "log.txt"), training_log(72.0))
    for dataset, acc in {"imagenetv2": 60.0, "imagenet_sketch": 46.0, "imagenet_a": 50.0,
                         "imagenet_r": 76.0}.items():
        write(os.path.join(out_dir, "evaluation", "RPP", "vit_b16_16shots", dataset, "seed1", "log.txt"),
              eval_log(acc))
    out, _ = run_cli(capsys, "dg", "--output", out_dir, "--method", "RPP", "--format", "csv")
    rows = csv_rows(out)
    assert [k[1] for k in rows] == ["imagenet", "imagenetv2", "imagenet_sketch", "imagenet_a",
                                    "imagenet_r", "average"]
    assert rows["RPP", "average", "accuracy"]["mean"] == "58.0"  # (60 + 46 + 50 + 76) / 4
    assert rows["RPP", "imagenetv2", "accuracy"]["std"] == ""  # one seed: no spread


def test_few_shot_layout(tmp_path, capsys):
    out_dir = str(tmp_path / "output")
    for seed, acc in {1: 50.0, 2: 54.0}.items():
        write(os.path.join(out_dir, "dtd", "CoOp", "rn50_4shots", f"seed{seed}", "log.txt"),
              training_log(acc))
    out, _ = run_cli(capsys, "fewshot", "--output", out_dir, "--method", "CoOp/rn50", "--shots", 4,
                     "--datasets", "dtd", "--format", "csv")
    assert csv_rows(out)["CoOp", "dtd", "accuracy"]["mean"] == "52.0"


def test_dir_mode_lists_each_seed_and_the_unfinished_one(tmp_path, capsys):
    folder = tmp_path / "oxford_pets" / "CoOp" / "vit_b16_16shots"
    write(str(folder / "seed1" / "log.txt"), training_log(90.0))
    write(str(folder / "seed2" / "log.txt"), training_log(93.0, finish="Finished training"))
    write(str(folder / "seed3" / "log.txt"), training_log(None, [91.0]))
    out, _ = run_cli(capsys, "--dir", str(folder))
    assert "Accuracy: 91.50 ± 2.12 [2/3 seeds]" in out  # std of (90, 93) = 3/sqrt(2)
    seed3 = next(line for line in out.splitlines() if line.startswith("3 "))
    assert seed3.split() == ["3", "training", "did", "not", "finish", "(log.txt)"]


# ---------------------------------------------------------------- chart and errors

@pytest.mark.parametrize("name, magic", [("hm.png", b"\x89PNG"), ("hm.svg", b"<?xml")])
def test_chart_file_is_written(base2new_tree, tmp_path, capsys, name, magic):
    chart = tmp_path / "charts" / name
    _, _ = run_cli(capsys, "base2new", "--output", base2new_tree, "--method", "CoOp", "--method", "MaPLe",
                   "--datasets", "caltech101", "dtd", "--reference", "MaPLe", "--chart", chart)
    data = chart.read_bytes()
    assert data.startswith(magic) and len(data) > 1000


def test_two_configs_of_one_trainer_get_rows_of_their_own(tmp_path, capsys):
    out = str(tmp_path / "output")
    write_base2new(out, "RPP", "demo_clip", "demo", base={1: 74.0}, new={1: 63.0})
    write_base2new(out, "RPP", "demo_clip_no_kd", "demo", base={1: 85.0}, new={1: 55.0})
    text, _ = run_cli(capsys, "base2new", "--output", out, "--datasets", "demo", "--format", "csv",
                      "--method", "RPP/demo_clip", "--method", "RPP/demo_clip_no_kd")
    rows = csv_rows(text)
    assert float(rows[("RPP/demo_clip", "demo", "base")]["mean"]) == 74.0
    assert float(rows[("RPP/demo_clip_no_kd", "demo", "base")]["mean"]) == 85.0
    with pytest.raises(SystemExit) as exited:
        parse_results.main(["base2new", "--output", out, "--method", "A=RPP/demo_clip",
                            "--method", "A=RPP/demo_clip_no_kd"])
    assert exited.value.code == 2
    assert "share the label 'A'" in capsys.readouterr().err


def test_bad_arguments_exit_2(base2new_tree, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_results.main(["base2new", "--output", base2new_tree, "--method", "CoOp", "--chart", "hm.jpg"])
    assert exited.value.code == 2
    code = parse_results.main(["base2new", "--output", base2new_tree, "--method", "CoOp",
                               "--reference", "POMP"])
    assert code == 2
    assert "no published base2new numbers for POMP" in capsys.readouterr().err
