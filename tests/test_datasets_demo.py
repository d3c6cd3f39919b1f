"""The Demo dataset: deterministic generation, real split-file layout, engine integration."""
import hashlib
import json
import os
import threading

import pytest
from PIL import Image

from datasets.demo import DEMO_CLASSES, FINGERPRINT_FILE, SPLIT_FILE, demo_classnames, generate_demo_dataset
from tests.fixtures.cfg import dataset_cfg


def tree_digest(folder):
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def test_generation_is_byte_identical(tmp_path):
    a = generate_demo_dataset(str(tmp_path / "a"))
    b = generate_demo_dataset(str(tmp_path / "b"))
    assert tree_digest(a) == tree_digest(b)


def test_layout_and_split_file_format(tmp_path):
    dataset_dir = generate_demo_dataset(str(tmp_path))
    assert sorted(os.listdir(os.path.join(dataset_dir, "images"))) == sorted(c.folder for c in DEMO_CLASSES)
    with open(os.path.join(dataset_dir, SPLIT_FILE)) as f:
        split = json.load(f)
    assert {k: len(v) for k, v in split.items()} == {"train": 480, "val": 120, "test": 600}
    impath, label, classname = split["train"][0]
    assert (impath, label, classname) == ("red_plain_circle/red_plain_circle_0000.png", 0, "red plain circle")
    # labels follow the world's class order, not the folders' alphabetical order
    assert split["test"][-1][1:] == [29, "purple striped star"]
    assert all(os.path.isfile(os.path.join(dataset_dir, "images", p)) for p, _, _ in split["test"])
    with Image.open(os.path.join(dataset_dir, "images", impath)) as image:
        assert (image.size, image.mode) == ((32, 32), "RGB")


def test_generation_is_idempotent_and_leaves_no_temp(tmp_path):
    first = generate_demo_dataset(str(tmp_path))
    before = tree_digest(first)
    assert generate_demo_dataset(str(tmp_path)) == first
    assert tree_digest(first) == before
    assert os.listdir(tmp_path) == ["demo"]


def test_concurrent_generation_is_safe(tmp_path):
    errors = []

    def run():
        try:
            generate_demo_dataset(str(tmp_path))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert os.listdir(tmp_path) == ["demo"]
    assert tree_digest(str(tmp_path / "demo")) == tree_digest(generate_demo_dataset(str(tmp_path / "x")))


@pytest.mark.parametrize("outdated", ["other fingerprint", "no fingerprint"])
def test_a_folder_of_an_older_demo_world_is_regenerated(tmp_path, outdated, capsys):
    current = tree_digest(generate_demo_dataset(str(tmp_path / "current")))
    dataset_dir = generate_demo_dataset(str(tmp_path / "data"))
    fingerprint = os.path.join(dataset_dir, FINGERPRINT_FILE)
    if outdated == "no fingerprint":
        os.remove(fingerprint)
    else:
        with open(fingerprint, "w") as f:
            f.write("0" * 64 + "\n")
    stale_picture = os.path.join(dataset_dir, "images", "red_plain_circle", "red_plain_circle_0000.png")
    Image.new("RGB", (32, 32)).save(stale_picture)
    os.makedirs(os.path.join(dataset_dir, "split_fewshot"))
    with open(os.path.join(dataset_dir, "split_fewshot", "shot_1-seed_1.json"), "w") as f:
        f.write("{}")

    assert generate_demo_dataset(str(tmp_path / "data")) == dataset_dir
    assert "regenerating" in capsys.readouterr().out
    assert tree_digest(dataset_dir) == current  # the stale few-shot split went with it
    assert os.listdir(tmp_path / "data") == ["demo"]


def test_broken_demo_folder_names_the_fix(tmp_path):
    (tmp_path / "demo").mkdir()
    with pytest.raises(FileNotFoundError, match="delete"):
        generate_demo_dataset(str(tmp_path))


def test_demo_dataset_through_registry(tmp_path):
    from engine import build_dataset

    cfg = dataset_cfg("demo", str(tmp_path), num_shots=4, seed=1)
    ds = build_dataset(cfg)
    assert ds.num_classes == 30
    assert ds.classnames == demo_classnames()
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (120, 120, 600)
    assert os.path.isfile(tmp_path / "demo" / "split_fewshot" / "shot_4-seed_1.json")


def test_demo_base_new(tmp_path):
    from engine import build_dataset

    base = build_dataset(dataset_cfg("demo", str(tmp_path), subsample="base"))
    new = build_dataset(dataset_cfg("demo", str(tmp_path), subsample="new"))
    assert base.classnames == demo_classnames()[:15]
    assert new.classnames == demo_classnames()[15:]
    assert sorted({d.label for d in new.test}) == list(range(15))
    assert new.classnames[:2] == ["green striped circle", "blue striped square"]


def test_demo_with_datamanager(tmp_path):
    from engine import DataManager

    cfg = dataset_cfg("demo", str(tmp_path), num_shots=2, seed=3, freeze=False)
    cfg.INPUT.SIZE = (32, 32)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    dm = DataManager(cfg)
    batch = next(iter(dm.train_loader_x))
    assert tuple(batch["img"].shape) == (4, 3, 32, 32)
    assert dm.num_classes == 30
