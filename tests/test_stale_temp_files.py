"""Temps of interrupted atomic writes are removed at the next start; generated files honour the umask."""
import json
import os
import stat
import subprocess
import sys
import time

import pytest

from engine.stale_temp_files import TEMP_NAME, process_start_time, remove_stale_temp_files

HOUR = 3600.0
TOKEN = "0123456789ab"


def leave_temp(folder, target="model.pth.tar-3", age=HOUR, is_folder=False):
    """A temp as a killed atomic write leaves it, last modified ``age`` seconds ago."""
    path = os.path.join(folder, f".{target}.{TOKEN}.tmp")
    os.makedirs(folder, exist_ok=True)
    if is_folder:
        os.makedirs(os.path.join(path, "images"))
        inner = os.path.join(path, "images", "a.png")
        open(inner, "wb").close()
        os.utime(inner, (time.time() - age,) * 2)
        os.utime(os.path.join(path, "images"), (time.time() - age,) * 2)
    else:
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
    os.utime(path, (time.time() - age,) * 2)
    return path


@pytest.fixture
def umask_002():
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# --------------------------------------------------------------------------- the cleaner


def test_only_old_temps_with_the_writers_name_pattern_are_removed(tmp_path):
    stale = leave_temp(str(tmp_path))
    stale_folder = leave_temp(str(tmp_path), target="demo", is_folder=True)
    fresh = leave_temp(str(tmp_path), target="model.pth.tar-4", age=-60)  # written after we started
    others = [".model.pth.tar-3.tmp", ".x.0123456789AB.tmp", ".x.0123456789a.tmp", "x.0123456789ab.tmp",
              ".x.0123456789ab.tmp.json", "model.pth.tar-3"]
    for name in others:
        open(tmp_path / name, "wb").close()
        os.utime(tmp_path / name, (time.time() - HOUR,) * 2)
    removed = remove_stale_temp_files(str(tmp_path))
    assert sorted(removed) == sorted([stale, stale_folder])
    assert sorted(os.listdir(tmp_path)) == sorted(others + [os.path.basename(fresh)])


def test_a_folder_temp_with_a_recent_file_inside_is_kept(tmp_path):
    folder = leave_temp(str(tmp_path), target="demo", is_folder=True)
    open(os.path.join(folder, "images", "being-written.png"), "wb").close()  # modified now
    assert remove_stale_temp_files(str(tmp_path)) == []


def test_depth_reaches_the_model_folders_of_an_output_folder(tmp_path):
    nested = leave_temp(str(tmp_path / "prompt_learner"))
    deeper = leave_temp(str(tmp_path / "prompt_learner" / "sub"))
    assert remove_stale_temp_files(str(tmp_path)) == []
    assert remove_stale_temp_files(str(tmp_path), depth=1) == [nested]
    assert os.path.exists(deeper)


def test_a_temp_held_open_by_a_live_writer_is_kept(tmp_path):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to see other processes' open files")
    path = leave_temp(str(tmp_path))
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'ab'); print('open', flush=True); "
                               "sys.stdin.read()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        assert remove_stale_temp_files(str(tmp_path), started_before=time.time() + HOUR) == []
    finally:
        writer.communicate("", timeout=30)
    assert remove_stale_temp_files(str(tmp_path), started_before=time.time() + HOUR) == [path]


def test_process_start_time_is_when_the_process_started():
    before = time.time()
    module_file = sys.modules[process_start_time.__module__].__file__
    child = subprocess.run(  # loads the module by path: without engine/__init__'s heavy imports
        [sys.executable, "-c", "import importlib.util, sys, time; time.sleep(1.5); "
                               "spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
                               "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
                               "print(m.process_start_time())", module_file],
        capture_output=True, text=True, check=True)
    # /proc gives boot time in whole seconds: allow one second either way
    assert before - 1 <= float(child.stdout) <= before + 1.4  # not the import, 1.5 s later


def test_a_missing_folder_is_nothing_to_clean(tmp_path):
    assert remove_stale_temp_files(str(tmp_path / "absent"), depth=2) == []


# --------------------------------------------------------------------------- who calls it


def test_train_start_removes_checkpoint_temps_of_a_killed_run(demo_data_root, tmp_path, capsys, restore_stdout):
    from conftest import DEMO_DATASET_CONFIG, TINY_COOP_CONFIG
    from engine.launch import main

    out = tmp_path / "out"
    stale = leave_temp(str(out / "prompt_learner"))
    code = main(["--root", demo_data_root, "--trainer", "ZeroshotCLIP", "--eval-only",
                 "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG,
                 "--output-dir", str(out)])
    assert code == 0
    assert not os.path.exists(stale)
    assert "Removed 1 temp file(s) of interrupted writes" in capsys.readouterr().out


def test_few_shot_and_listing_caches_clear_their_folders(tmp_path):
    from datasets.fewshot import fewshot_cache_path, fewshot_train_val
    from datasets.folder_index import load_folder_index
    from datasets.records import Record

    dataset_dir = str(tmp_path / "ds")
    cache_dir = os.path.dirname(fewshot_cache_path(dataset_dir, 1, 1))
    stale_cache = leave_temp(cache_dir, target="shot_1-seed_1.json")
    stale_index = leave_temp(dataset_dir, target="rpp_index_train.json")
    records = [Record(os.path.join(dataset_dir, f"c{label}.jpg"), label, f"c{label}") for label in range(3)]
    fewshot_train_val(dataset_dir, 1, 1, records, None)
    assert not os.path.exists(stale_cache) and os.path.exists(stale_index)
    os.makedirs(os.path.join(dataset_dir, "train", "n1"))
    load_folder_index(os.path.join(dataset_dir, "train"), ["n1"], os.path.join(dataset_dir, "rpp_index_train.json"))
    assert not os.path.exists(stale_index)


def test_demo_generation_clears_an_interrupted_generation(tmp_path, monkeypatch):
    import datasets.demo as demo

    monkeypatch.setattr(demo, "IMAGES_PER_SPLIT", (("train", 1), ("val", 1), ("test", 1)))
    stale = leave_temp(str(tmp_path), target="demo", is_folder=True)
    demo.generate_demo_dataset(str(tmp_path))
    assert os.listdir(tmp_path) == ["demo"] and not os.path.exists(stale)


# --------------------------------------------------------------------------- the umask


def test_json_caches_honour_the_umask_and_use_the_temp_name_the_cleaner_knows(tmp_path, monkeypatch, umask_002):
    from datasets import jsonio

    path = str(tmp_path / "shared" / "cache.json")
    jsonio.write_json_atomic(path, {"a": 1})
    assert mode(path) == 0o664 and mode(os.path.dirname(path)) == 0o775
    assert json.load(open(path)) == {"a": 1}

    seen = []

    def killed_before_the_rename(src, dst):
        seen.append((os.path.basename(src), mode(src)))
        raise KeyboardInterrupt

    monkeypatch.setattr(jsonio.os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        jsonio.write_json_atomic(path, {"a": 2})
    (name, temp_mode), = seen
    assert TEMP_NAME.match(name) and name.startswith(".cache.json.") and temp_mode == 0o664


def test_few_shot_cache_honours_the_umask(tmp_path, umask_002):
    from datasets.fewshot import fewshot_cache_path, fewshot_train_val
    from datasets.records import Record

    dataset_dir = str(tmp_path)
    records = [Record(os.path.join(dataset_dir, f"c{label}.jpg"), label, f"c{label}") for label in range(3)]
    fewshot_train_val(dataset_dir, 1, 1, records, None)
    assert mode(fewshot_cache_path(dataset_dir, 1, 1)) == 0o664


def test_generated_demo_folder_honours_the_umask(tmp_path, monkeypatch, umask_002):
    import datasets.demo as demo

    monkeypatch.setattr(demo, "IMAGES_PER_SPLIT", (("train", 1), ("val", 1), ("test", 1)))
    dataset_dir = demo.generate_demo_dataset(str(tmp_path))
    assert mode(dataset_dir) == 0o775
    for dirpath, dirnames, filenames in os.walk(dataset_dir):
        assert all(mode(os.path.join(dirpath, d)) == 0o775 for d in dirnames)
        assert all(mode(os.path.join(dirpath, f)) == 0o664 for f in filenames)
