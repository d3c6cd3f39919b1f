"""The shared dataset helpers: split files, few-shot sampling and caching, base/new, listings."""
import json
import os
import random
import shutil

import pytest

from datasets import folder_index
from datasets.class_folders import FolderRecords
from datasets.errors import MissingImagesError, SplitFileError
from datasets.fewshot import fewshot_cache_path, fewshot_train_val, sample_few_shot, sample_groups
from datasets.folder_index import load_folder_index
from datasets.records import Record, to_datums
from datasets.splits import read_split, write_split
from datasets.subsample import subsample_classes


def make_records(folder, n_classes=5, per_class=6, create=True):
    records = []
    for label in range(n_classes):
        for i in range(per_class):
            path = os.path.join(folder, f"c{label}", f"img{i}.jpg")
            if create:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "wb").close()
            records.append(Record(path, label, f"class {label}"))
    return records


# --- split files ---------------------------------------------------------------------------

def test_split_round_trip_uses_relative_forward_slash_paths(tmp_path):
    image_dir = str(tmp_path / "images")
    records = make_records(image_dir, 2, 2, create=False)
    splits = {"train": records[0::2], "val": records[1:2], "test": records[3:]}  # both classes in train
    write_split(str(tmp_path / "split.json"), splits, image_dir)
    raw = json.loads((tmp_path / "split.json").read_text())
    assert raw["train"][0] == ["c0/img0.jpg", 0, "class 0"]
    assert read_split(str(tmp_path / "split.json"), image_dir) == splits


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ('{"train": [], "val": []}', '"train", "val" and "test"'),
    ('{"train": [["a.jpg", "0", "x"]], "val": [], "test": []}', "entry 0 of \"train\""),
    ('{"train": [["a.jpg", 0]], "val": [], "test": []}', "expected [impath, label, classname]"),
])
def test_bad_split_file_names_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "split_zhou_X.json"
    path.write_text(content)
    with pytest.raises(SplitFileError) as err:
        read_split(str(path), str(tmp_path), "X", fix="download it again")
    assert str(path) in str(err.value) and problem in str(err.value) and "download it again" in str(err.value)


# --- base / new ----------------------------------------------------------------------------

def test_subsample_follows_cocoop():
    train = make_records("/x", n_classes=5, per_class=2, create=False)
    test = make_records("/y", n_classes=5, per_class=1, create=False)
    base_train, base_test = subsample_classes(train, test, subsample="base")
    new_train, new_test = subsample_classes(train, test, subsample="new")
    assert sorted({r.classname for r in base_train}) == ["class 0", "class 1", "class 2"]  # ceil(5/2)
    assert sorted({r.classname for r in new_train}) == ["class 3", "class 4"]
    assert sorted({r.label for r in new_test}) == [0, 1]  # relabelled from 0
    assert [r.classname for r in new_test] == ["class 3", "class 4"]
    assert subsample_classes(train, test, subsample="all") == [train, test]


def test_subsample_classes_are_decided_by_train():
    train = [Record("/a", 2, "b"), Record("/b", 7, "c")]
    test = [Record("/c", 0, "a"), Record("/d", 2, "b"), Record("/e", 7, "c")]
    (_, base_test) = subsample_classes(train, test, subsample="base")
    assert base_test == [Record("/d", 0, "b")]


def test_subsample_rejects_unknown_value():
    with pytest.raises(ValueError, match="base, new"):
        subsample_classes([], subsample="novel")


# --- few-shot sampling ---------------------------------------------------------------------

@pytest.mark.real_dassl
def test_sampling_reproduces_dassl_generate_fewshot_dataset(tmp_path):
    from engine import DatasetBase

    records = make_records(str(tmp_path), n_classes=4, per_class=7)
    random.shuffle(records)  # labels in first-appearance order, not sorted
    train, val = records[:20], records[20:]
    random.seed(3)  # what set_random_seed(3) does before Dassl builds the dataset
    dassl = DatasetBase(train_x=train)
    want_train = dassl.generate_fewshot_dataset(train, num_shots=3)
    want_val = dassl.generate_fewshot_dataset(val, num_shots=min(3, 4))
    rng = random.Random(3)
    assert sample_few_shot(train, 3, rng) == want_train
    assert sample_few_shot(val, 3, rng) == want_val


def test_lazy_folder_groups_draw_like_lists():
    names = [f"{i}.jpg" for i in range(50)]
    lazy = [FolderRecords("/d/c0", names, 0, "zero"), FolderRecords("/d/c1", names[:3], 1, "one")]
    eager = [list(g) for g in lazy]
    assert sample_groups(lazy, 16, random.Random(5)) == sample_groups(eager, 16, random.Random(5))


def test_val_gets_at_most_four_shots(tmp_path):
    records = make_records(str(tmp_path), per_class=10)
    train, val = fewshot_train_val(str(tmp_path), 8, 1, records, records)
    assert len(train) == 5 * 8 and len(val) == 5 * 4


def test_no_shots_returns_inputs(tmp_path):
    records = make_records(str(tmp_path))
    assert fewshot_train_val(str(tmp_path), 0, 1, records, None) == (records, None)
    assert not os.path.exists(tmp_path / "split_fewshot")


def test_cache_is_json_with_relative_paths_and_is_reused(tmp_path, capsys):
    dataset_dir = str(tmp_path / "ds")
    records = make_records(dataset_dir)
    first = fewshot_train_val(dataset_dir, 2, 7, records, records)
    cache = fewshot_cache_path(dataset_dir, 2, 7)
    assert cache.endswith(os.path.join("split_fewshot", "shot_2-seed_7.json"))
    data = json.loads(open(cache).read())
    assert all(not os.path.isabs(p) for p, _, _ in data["train"] + data["val"])
    capsys.readouterr()
    assert fewshot_train_val(dataset_dir, 2, 7, records, records) == first
    assert "Loading few-shot split" in capsys.readouterr().out


def test_cache_survives_moving_the_data_root(tmp_path):
    old = str(tmp_path / "old" / "ds")
    train, _ = fewshot_train_val(old, 2, 1, make_records(old), None)
    new = str(tmp_path / "new" / "ds")
    shutil.copytree(old, new)
    shutil.rmtree(tmp_path / "old")
    moved, _ = fewshot_train_val(new, 2, 1, make_records(new, create=False), None)
    assert [os.path.relpath(r.impath, new) for r in moved] == [os.path.relpath(r.impath, old) for r in train]
    assert all(os.path.isfile(r.impath) for r in moved)


def test_cache_is_used_even_if_a_fresh_draw_would_differ(tmp_path):
    dataset_dir = str(tmp_path)
    records = make_records(dataset_dir)
    fewshot_train_val(dataset_dir, 2, 1, records, None)
    cache = fewshot_cache_path(dataset_dir, 2, 1)
    data = json.loads(open(cache).read())
    data["train"] = data["train"][:3]  # a hand-edited cache is what gets loaded
    open(cache, "w").write(json.dumps(data))
    train, _ = fewshot_train_val(dataset_dir, 2, 1, records, None)
    assert len(train) == 3


def test_stale_or_damaged_cache_is_redrawn(tmp_path, capsys):
    dataset_dir = str(tmp_path)
    records = make_records(dataset_dir)
    fewshot_train_val(dataset_dir, 2, 1, records, None)
    fewshot_train_val(dataset_dir, 2, 1, records[:-6], None)  # the split lost a class
    assert "split changed" in capsys.readouterr().out
    open(fewshot_cache_path(dataset_dir, 2, 1), "w").write("{broken")
    train, _ = fewshot_train_val(dataset_dir, 2, 1, records, None)
    assert len(train) == 10 and "unreadable" in capsys.readouterr().out


@pytest.mark.parametrize("bad_label", [5, -1, "3", True])
def test_cache_with_a_label_outside_the_split_is_redrawn(tmp_path, capsys, bad_label):
    """5 classes: a hand-edited label 5 would make num_classes 6, with no name for class 5."""
    dataset_dir = str(tmp_path)
    records = make_records(dataset_dir)
    fresh, _ = fewshot_train_val(dataset_dir, 2, 1, records, None)
    cache = fewshot_cache_path(dataset_dir, 2, 1)
    data = json.loads(open(cache).read())
    data["train"][3][1] = bad_label
    open(cache, "w").write(json.dumps(data))
    capsys.readouterr()
    train, _ = fewshot_train_val(dataset_dir, 2, 1, records, None)
    assert "unreadable" in capsys.readouterr().out
    assert train == fresh  # the same seed draws the same picks again
    assert json.loads(open(cache).read())["train"][3][1] == fresh[3].label  # and the cache is repaired


def test_cache_drawn_from_class_folders_checks_labels_too(tmp_path, capsys):
    from datasets.class_folders import ClassFolderSplit

    split_dir = tmp_path / "train"
    for wnid in ("n1", "n2", "n3"):
        for i in range(3):
            (split_dir / wnid).mkdir(parents=True, exist_ok=True)
            (split_dir / wnid / f"{i}.jpg").write_bytes(b"")
    index = load_folder_index(str(split_dir), ["n1", "n2", "n3"])
    pool = ClassFolderSplit((index, w, label, w) for label, w in enumerate(["n1", "n2", "n3"]))
    assert sorted(pool.labels()) == [0, 1, 2]
    fresh, _ = fewshot_train_val(str(tmp_path), 1, 1, pool, None)
    cache = fewshot_cache_path(str(tmp_path), 1, 1)
    data = json.loads(open(cache).read())
    data["train"][0][1] = 3
    open(cache, "w").write(json.dumps(data))
    capsys.readouterr()
    assert fewshot_train_val(str(tmp_path), 1, 1, pool, None)[0] == fresh
    assert "unreadable" in capsys.readouterr().out


def test_read_only_data_folder_only_warns(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("datasets.jsonio.write_json_atomic", refuse)
    records = make_records(str(tmp_path))
    train, _ = fewshot_train_val(str(tmp_path), 2, 1, records, None)
    assert len(train) == 10 and "could not write cache" in capsys.readouterr().out


def test_seeds_give_different_draws(tmp_path):
    records = make_records(str(tmp_path), per_class=20)
    a, _ = fewshot_train_val(str(tmp_path), 4, 1, records, None)
    b, _ = fewshot_train_val(str(tmp_path), 4, 2, records, None)
    assert a != b


# --- folder index --------------------------------------------------------------------------

def test_folder_index_is_sorted_cached_and_invalidated(tmp_path, monkeypatch):
    split_dir = tmp_path / "train"
    for folder, names in {"b": ["2.jpg", "10.jpg", ".hidden"], "a": ["x.jpg"]}.items():
        (split_dir / folder).mkdir(parents=True)
        for n in names:
            (split_dir / folder / n).write_bytes(b"")
    cache = str(tmp_path / "index.json")
    index = load_folder_index(str(split_dir), ["a", "b"], cache)
    assert index.files("b") == ["10.jpg", "2.jpg"] and index.count("a") == 1

    calls = []
    real_list_files = folder_index.list_files
    monkeypatch.setattr(folder_index, "list_files", lambda d: calls.append(d) or real_list_files(d))
    assert load_folder_index(str(split_dir), ["a", "b"], cache).files("b") == ["10.jpg", "2.jpg"]
    assert calls == []  # served from the cache

    (split_dir / "a" / "y.jpg").write_bytes(b"")
    os.utime(split_dir / "a", ns=(1, 1))  # make sure the folder's mtime differs from the cached one
    assert load_folder_index(str(split_dir), ["a", "b"], cache).files("a") == ["x.jpg", "y.jpg"]
    assert len(calls) == 2


# --- Datums --------------------------------------------------------------------------------

def test_missing_images_are_counted(tmp_path):
    records = make_records(str(tmp_path), n_classes=1, per_class=8)
    for r in records[:6]:
        os.remove(r.impath)
    with pytest.raises(MissingImagesError) as err:
        to_datums(records, "Pets", fix="re-extract images.tar.gz")
    message = str(err.value)
    assert "6 of 8 listed images are missing" in message and "and 1 more" in message
    assert records[0].impath in message and "re-extract images.tar.gz" in message


@pytest.mark.real_dassl
def test_datums_carry_record_fields(tmp_path):
    (datum,) = to_datums(make_records(str(tmp_path), 1, 1), "X", "")
    assert (datum.label, datum.classname, datum.domain) == (0, "class 0", 0)


def test_dataset_code_never_pickles():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [os.path.join("datasets", n) for n in os.listdir(os.path.join(root, "datasets")) if n.endswith(".py")]
    files += [os.path.join("tools", n) for n in ("check_dataset.py", "scan_images.py", "download_datasets.py")]
    for name in files:
        source = open(os.path.join(root, name)).read()
        assert "import pickle" not in source and "pickle.load" not in source, name
