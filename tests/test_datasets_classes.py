"""Every dataset class against a fake copy of its real layout."""
import json
import os
import re

import pytest

from datasets.catalog import CATALOG, CONFIG_TO_NAME, IN21K_CLASSNAMES, IN21K_SMALL_CLASSES
from datasets.errors import DatasetNotFoundError, EmptyClassFolderError, MissingImagesError, SplitFileError
from tests.fixtures.datasets_support import TEST_ONLY, VAL_IS_TEST, build, fake_and_build, relative_picks
from tests.fixtures.fake_datasets import FAKE_DATASETS, IMAGENET_CLASSES, make_fake_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(FAKE_DATASETS)
TRAINABLE = [c for c in CONFIGS if c not in TEST_ONLY]
SPLIT_FILE_DATASETS = [c for c in TRAINABLE if CATALOG[CONFIG_TO_NAME[c]].requirements[-1].path.endswith(".json")]


@pytest.mark.real_dassl
def test_every_config_file_names_a_registered_catalogued_dataset():
    from engine import DATASET_REGISTRY

    import datasets  # noqa: F401

    files = sorted(f[:-5] for f in os.listdir(os.path.join(REPO, "configs", "datasets")) if f.endswith(".yaml"))
    assert files == sorted(CONFIG_TO_NAME)
    for stem in files:
        text = open(os.path.join(REPO, "configs", "datasets", f"{stem}.yaml")).read()
        name = re.search(r'NAME:\s*"?(\w+)"?', text).group(1)
        assert name == CONFIG_TO_NAME[stem] and name in DATASET_REGISTRY.registered_names()
    assert set(CONFIGS) == set(files) - {"demo"}


@pytest.mark.real_dassl
@pytest.mark.parametrize("config", CONFIGS)
def test_counts_labels_and_class_names(config, tmp_path):
    fake, ds = fake_and_build(config, tmp_path)
    assert ds.classnames == fake.classnames
    assert ds.num_classes == len(fake.classnames)
    assert len(ds.train_x) == fake.counts["train"]
    assert len(ds.test) == fake.counts["test"]
    assert len(ds.val or []) == fake.counts["val"]
    for item in list(ds.train_x) + list(ds.test) + list(ds.val or []):
        assert ds.lab2cname[item.label] == item.classname
        assert os.path.isfile(item.impath) and item.impath.startswith(fake.dataset_dir + os.sep)
    if config in VAL_IS_TEST:
        assert ds.val == ds.test


@pytest.mark.real_dassl
def test_imagenet_variants_use_imagenet_class_names(tmp_path):
    names = dict(IMAGENET_CLASSES)
    _, a = fake_and_build("imagenet_a", tmp_path)
    assert a.classnames == [names[w] for w in ("n01498041", "n01531178", "n01534433", "n01558993", "n01580077")]
    _, v2 = fake_and_build("imagenetv2", tmp_path)
    assert {d.label for d in v2.test if "/3/" in d.impath} == {3}  # folder i is class i
    assert v2.lab2cname[3] == "tiger shark"


@pytest.mark.real_dassl
@pytest.mark.parametrize("config", TRAINABLE)
def test_few_shot_counts(config, tmp_path):
    fake, ds = fake_and_build(config, tmp_path, num_shots=2)
    n = len(fake.classnames)
    assert len(ds.train_x) == 2 * n
    assert [sum(d.label == c for d in ds.train_x) for c in range(n)] == [2] * n
    if config in VAL_IS_TEST:
        assert len(ds.val) == fake.counts["test"]
    else:
        assert len(ds.val) == 2 * n  # min(2, 4) per class
    assert os.path.isfile(os.path.join(fake.dataset_dir, "split_fewshot", "shot_2-seed_1.json"))


@pytest.mark.parametrize("config", sorted(TEST_ONLY))
def test_test_only_variants_ignore_shots_and_subsampling(config, tmp_path):
    fake, ds = fake_and_build(config, tmp_path, num_shots=1, subsample="base")
    assert len(ds.test) == fake.counts["test"] and ds.classnames == fake.classnames
    assert not os.path.exists(os.path.join(fake.dataset_dir, "split_fewshot"))


@pytest.mark.parametrize("config", TRAINABLE)
def test_few_shot_draws_are_identical_across_runs_and_machines(config, tmp_path):
    fake_a, a = fake_and_build(config, tmp_path / "machine_a", num_shots=2, seed=5)
    fake_b, b = fake_and_build(config, tmp_path / "machine_b", num_shots=2, seed=5)
    picks_a = relative_picks(a.train_x, fake_a.dataset_dir)
    assert picks_a == relative_picks(b.train_x, fake_b.dataset_dir)
    assert relative_picks(a.val, fake_a.dataset_dir) == relative_picks(b.val, fake_b.dataset_dir)
    again = build(config, tmp_path / "machine_a", num_shots=2, seed=5)  # from the cache
    assert relative_picks(again.train_x, fake_a.dataset_dir) == picks_a


@pytest.mark.real_dassl
@pytest.mark.parametrize("config", TRAINABLE)
def test_base_new_relabelling(config, tmp_path):
    fake = make_fake_dataset(tmp_path, config)
    base = build(config, tmp_path, num_shots=2, subsample="base")
    new = build(config, tmp_path, num_shots=2, subsample="new")
    assert base.classnames == fake.classnames[:3] and new.classnames == fake.classnames[3:]
    for ds, n in ((base, 3), (new, 2)):
        for split in (ds.train_x, ds.val, ds.test):
            assert sorted({d.label for d in split}) == list(range(n))
    assert {d.classname for d in new.test} == set(fake.classnames[3:])
    # base and new share one few-shot cache, as in CoOp
    assert os.listdir(os.path.join(fake.dataset_dir, "split_fewshot")) == ["shot_2-seed_1.json"]


@pytest.mark.parametrize("config", SPLIT_FILE_DATASETS + ["fgvc_aircraft"])
def test_few_shot_cache_is_reused(config, tmp_path):
    fake, first = fake_and_build(config, tmp_path, num_shots=2)
    cache = os.path.join(fake.dataset_dir, "split_fewshot", "shot_2-seed_1.json")
    data = json.load(open(cache))
    data["train"] = data["train"][:2]  # a cache hit returns exactly what the cache says
    json.dump(data, open(cache, "w"))
    assert len(build(config, tmp_path, num_shots=2).train_x) == 2


@pytest.mark.parametrize("config", CONFIGS)
def test_each_missing_requirement_names_path_and_docs_step(config, tmp_path):
    info = CATALOG[CONFIG_TO_NAME[config]]
    for requirement in info.requirements:
        root = tmp_path / requirement.path.replace("/", "_")
        fake = make_fake_dataset(root, config)
        path = os.path.join(fake.dataset_dir, requirement.path)
        os.rename(path, path + ".moved")
        with pytest.raises(DatasetNotFoundError) as err:
            build(config, root)
        message = str(err.value)
        assert path in message and requirement.fix in message and f'section "{info.section}"' in message


@pytest.mark.parametrize("config", CONFIGS)
def test_missing_dataset_folder(config, tmp_path):
    info = CATALOG[CONFIG_TO_NAME[config]]
    with pytest.raises(FileNotFoundError) as err:
        build(config, tmp_path)
    assert os.path.join(str(tmp_path), info.folder) in str(err.value) and "DATASETS.md" in str(err.value)


@pytest.mark.parametrize("config", SPLIT_FILE_DATASETS)
def test_split_entries_pointing_at_missing_files_are_counted(config, tmp_path):
    fake = make_fake_dataset(tmp_path, config)
    split_name = CATALOG[CONFIG_TO_NAME[config]].requirements[-1].path
    split = json.load(open(os.path.join(fake.dataset_dir, split_name)))
    ds = build(config, tmp_path)
    victims = [d.impath for d in ds.test[:2]]
    for path in victims:
        os.remove(path)
    with pytest.raises(MissingImagesError) as err:
        build(config, tmp_path)
    assert f"2 of {len(split['test'])} listed images are missing" in str(err.value)
    assert victims[0] in str(err.value)


@pytest.mark.parametrize("config", SPLIT_FILE_DATASETS)
def test_corrupt_split_file_is_named(config, tmp_path):
    fake = make_fake_dataset(tmp_path, config)
    requirement = CATALOG[CONFIG_TO_NAME[config]].requirements[-1]
    path = os.path.join(fake.dataset_dir, requirement.path)
    open(path, "w").write('{"train": [')
    with pytest.raises(SplitFileError) as err:
        build(config, tmp_path)
    assert path in str(err.value) and requirement.fix in str(err.value)


def test_fgvc_unknown_variant_is_reported(tmp_path):
    fake = make_fake_dataset(tmp_path, "fgvc_aircraft")
    with open(os.path.join(fake.dataset_dir, "images_variant_test.txt"), "a") as f:
        f.write("1234567 A380\n")
    with pytest.raises(SplitFileError, match="unknown variant 'A380'"):
        build("fgvc_aircraft", tmp_path)


def test_imagenet_needs_every_val_class_folder(tmp_path):
    fake = make_fake_dataset(tmp_path, "imagenet")
    os.rename(os.path.join(fake.dataset_dir, "images", "val", "n01443537"), os.path.join(tmp_path, "elsewhere"))
    with pytest.raises(DatasetNotFoundError, match="1 of 5 class folders"):
        build("imagenet", tmp_path)


CLASS_FOLDER_SPLITS = [  # (config, the folder holding one sub-folder per class)
    ("imagenet", "images/train"), ("imagenet", "images/val"),
    ("imagenet21k", "imagenet21k_train"), ("imagenet21k", "imagenet21k_val"),
    ("imagenet_sketch", "images"), ("imagenet_a", "imagenet-a"), ("imagenet_r", "imagenet-r"),
    ("imagenetv2", "imagenetv2-matched-frequency-format-val"),
]


def empty_second_class_folder(dataset_dir, split_subdir):
    """Empty the second class folder; returns (its path, how many class folders there are)."""
    split_dir = os.path.join(dataset_dir, split_subdir)
    folders = sorted(e for e in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, e)))
    folder = os.path.join(split_dir, folders[1])
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    open(os.path.join(folder, ".DS_Store"), "w").close()  # hidden files are not images either
    return folder, len(folders)


@pytest.mark.parametrize("config, split_subdir", CLASS_FOLDER_SPLITS)
def test_empty_class_folder_is_refused_in_one_line(config, split_subdir, tmp_path):
    """Labels are folder positions: Dassl would name label 1 after class 2 (num_classes unchanged)."""
    from engine.launch import one_line

    fake = make_fake_dataset(tmp_path, config)
    folder, n_folders = empty_second_class_folder(fake.dataset_dir, split_subdir)
    with pytest.raises(EmptyClassFolderError) as info:
        build(config, tmp_path)
    message = one_line(info.value)
    assert f"1 of {n_folders} class folders are empty" in message
    assert folder in message and "shift" in message and "DATASETS.md" in message


def test_imagenet_class_missing_from_classnames_is_named(tmp_path):
    fake = make_fake_dataset(tmp_path, "imagenet")
    os.makedirs(os.path.join(fake.dataset_dir, "images", "train", "n09999999"))
    with pytest.raises(SplitFileError, match="n09999999"):
        build("imagenet", tmp_path)


def test_datasets_md_holds_every_fix_and_section():
    text = open(os.path.join(REPO, "DATASETS.md"), encoding="utf-8").read()
    for info in CATALOG.values():
        assert f"## {info.section}\n" in text, info.section
        assert f"`{info.config}.yaml`" in text
        for requirement in info.requirements:
            assert requirement.fix in text, requirement.fix
    assert IN21K_CLASSNAMES.fix in text and IN21K_SMALL_CLASSES.fix in text
