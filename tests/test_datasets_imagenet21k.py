"""ImageNet-21K in POMP's layout: class sets, class-name sources, cached listings."""
import os

import pytest

from datasets import folder_index
from datasets.errors import DatasetNotFoundError, SplitFileError
from tests.fixtures.datasets_support import build
from tests.fixtures.fake_datasets import IMAGENET_CLASSES, IN21K_SMALL, make_imagenet21k

ALL_SET = ("DATASET.IN21K_CLASS_SET", "all")


def test_pomp_class_set_reads_train_folders_and_tree_names(tmp_path):
    fake = make_imagenet21k(str(tmp_path))
    ds = build("imagenet21k", tmp_path, num_shots=2)
    assert ds.classnames == [n for _, n in IMAGENET_CLASSES[:5]] == fake.classnames
    assert len(ds.train_x) == 10 and ds.val == ds.test and len(ds.test) == 15
    assert os.path.isfile(os.path.join(fake.dataset_dir, "split_fewshot", "shot_2-seed_1.json"))


def test_all_class_set_adds_small_classes_in_sorted_label_order(tmp_path):
    fake = make_imagenet21k(str(tmp_path))
    ds = build("imagenet21k", tmp_path, num_shots=2, opts=ALL_SET)
    wnids = sorted([w for w, _ in IMAGENET_CLASSES[:5]] + [w for w, _ in IN21K_SMALL])
    names = dict(IMAGENET_CLASSES[:5] + IN21K_SMALL)
    assert ds.classnames == [names[w] for w in wnids]
    assert len(ds.train_x) == 2 * 7
    assert {d.label for d in ds.test} == {wnids.index(w) for w, _ in IMAGENET_CLASSES[:5]}
    # its own few-shot cache, so switching class sets never overwrites POMP's draw
    assert os.path.isfile(os.path.join(fake.dataset_dir, "split_fewshot", "shot_2-seed_1-all.json"))


def test_all_class_set_needs_the_small_classes_folder(tmp_path):
    fake = make_imagenet21k(str(tmp_path))
    os.rename(os.path.join(fake.dataset_dir, "imagenet21k_small_classes"), os.path.join(tmp_path, "x"))
    assert build("imagenet21k", tmp_path).num_classes == 5  # pomp does not need it
    with pytest.raises(DatasetNotFoundError, match="imagenet21k_small_classes"):
        build("imagenet21k", tmp_path, opts=ALL_SET)


def test_unknown_class_set_is_rejected(tmp_path):
    make_imagenet21k(str(tmp_path))
    with pytest.raises(ValueError, match="pomp, all"):
        build("imagenet21k", tmp_path, opts=("DATASET.IN21K_CLASS_SET", "full"))


def test_classnames_txt_overrides_the_tree(tmp_path):
    fake = make_imagenet21k(str(tmp_path))
    lines = [f"{w} custom {i}" for i, (w, _) in enumerate(IMAGENET_CLASSES[:5])]
    open(os.path.join(fake.dataset_dir, "classnames.txt"), "w").write("\n".join(lines))
    assert build("imagenet21k", tmp_path).classnames == [f"custom {i}" for i in range(5)]


def test_missing_class_description_file_names_both_options(tmp_path):
    fake = make_imagenet21k(str(tmp_path), with_tree=False)
    with pytest.raises(DatasetNotFoundError) as err:
        build("imagenet21k", tmp_path)
    assert os.path.join(fake.dataset_dir, "imagenet21k_miil_tree.pth") in str(err.value)
    assert "classnames.txt" in str(err.value)


def test_tree_file_that_is_not_plain_data_is_refused(tmp_path):
    fake = make_imagenet21k(str(tmp_path))
    open(os.path.join(fake.dataset_dir, "imagenet21k_miil_tree.pth"), "wb").write(b"not a torch file")
    with pytest.raises(SplitFileError, match="weights_only"):
        build("imagenet21k", tmp_path)


def test_listing_is_cached_and_reused(tmp_path, monkeypatch):
    fake = make_imagenet21k(str(tmp_path))
    first = build("imagenet21k", tmp_path, num_shots=2)
    for split in ("imagenet21k_train", "imagenet21k_val"):
        assert os.path.isfile(os.path.join(fake.dataset_dir, f"rpp_index_{split}.json"))

    def no_listing(directory):
        raise AssertionError(f"listed {directory} although the index is cached")

    monkeypatch.setattr(folder_index, "list_files", no_listing)
    again = build("imagenet21k", tmp_path, num_shots=2)
    assert [d.impath for d in again.train_x] == [d.impath for d in first.train_x]
    assert [d.impath for d in again.test] == [d.impath for d in first.test]


def test_full_training_set_without_shots(tmp_path):
    make_imagenet21k(str(tmp_path))
    ds = build("imagenet21k", tmp_path, num_shots=0, subsample="new")
    assert ds.classnames == [n for _, n in IMAGENET_CLASSES[3:5]] and len(ds.train_x) == 8
