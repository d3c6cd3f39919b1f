"""The bundled data engine: Datum, DatasetBase, DataManager, loaders, samplers, transforms."""
import os
import random
from collections import Counter

import pytest
import torch
from PIL import Image
from torch.utils.data import RandomSampler, SequentialSampler
from torchvision import transforms as T

from engine.bundled.config import get_cfg_default
from engine.bundled.data import (
    DataManager, DatasetBase, DatasetWrapper, Datum, build_data_loader, build_dataset,
    build_sampler,
)
from engine.bundled.data.transforms import INTERPOLATION_MODES, build_transform
from engine.bundled.registry import DATASET_REGISTRY

COOP_TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CLASSNAMES = ["cat", "dog", "fox"]


def write_png(path, size=(40, 30), color=(200, 40, 10)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return str(path)


def make_datums(tmp_path, labels, domains=None):
    """One tiny PNG-backed Datum per label (domain 0 unless ``domains`` is given)."""
    domains = domains or [0] * len(labels)
    return [
        Datum(
            impath=write_png(tmp_path / "imgs" / f"{i}.png"),
            label=label, domain=domain, classname=f"class{label}",
        )
        for i, (label, domain) in enumerate(zip(labels, domains))
    ]


def small_cfg(**input_overrides):
    cfg = get_cfg_default()
    cfg.USE_CUDA = False
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.INPUT.SIZE = (32, 32)
    for key, value in input_overrides.items():
        setattr(cfg.INPUT, key, value)
    return cfg


def coop_cfg():
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (224, 224)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    cfg.INPUT.TRANSFORMS = COOP_TRANSFORMS
    return cfg


# --------------------------------------------------------------------------- Datum


def test_datum_properties_are_read_only(tmp_path):
    path = write_png(tmp_path / "a.png")
    item = Datum(impath=path, label=3, domain=1, classname="cat")
    assert (item.impath, item.label, item.domain, item.classname) == (path, 3, 1, "cat")
    with pytest.raises(AttributeError):
        item.label = 4


def test_datum_missing_file_names_the_path(tmp_path):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(AssertionError, match="nope.png"):
        Datum(impath=missing)
    with pytest.raises(AssertionError):
        Datum(impath=tmp_path / "a.png")  # an existing file, but a Path rather than a str


# --------------------------------------------------------------------------- DatasetBase


def test_dataset_base_class_info_comes_from_train_x(tmp_path):
    train = make_datums(tmp_path, [2, 0, 2, 0])  # label 1 never appears
    test = make_datums(tmp_path, [5])
    dataset = DatasetBase(train_x=train, test=test)
    assert dataset.num_classes == 3
    assert dataset.classnames == ["class0", "class2"]
    assert list(dataset.lab2cname.items()) == [(0, "class0"), (2, "class2")]
    assert dataset.train_x is train and dataset.test is test
    assert dataset.val is None and dataset.train_u is None
    assert DatasetBase.get_num_classes(test) == 6
    assert DatasetBase.get_lab2cname(test) == ({5: "class5"}, ["class5"])


def test_split_by_label_and_domain_keep_first_appearance_order(tmp_path):
    items = make_datums(tmp_path, [2, 0, 2, 1], domains=[1, 1, 0, 1])
    by_label = DatasetBase.split_dataset_by_label(items)
    assert list(by_label) == [2, 0, 1]
    assert by_label[2] == [items[0], items[2]]
    assert list(DatasetBase.split_dataset_by_domain(items)) == [1, 0]


def test_input_domain_checks():
    class TwoDomains(DatasetBase):
        domains = ["photo", "sketch"]

    dataset = TwoDomains(train_x=[])
    dataset.check_input_domains(["photo"], ["sketch"])
    with pytest.raises(ValueError, match="cartoon"):
        dataset.is_input_domain_valid(["cartoon"])
    with pytest.raises(AssertionError):
        dataset.check_input_domains([], ["sketch"])


def test_fewshot_counts_and_printed_line(tmp_path, capsys):
    items = make_datums(tmp_path, [0] * 5 + [1] * 3 + [2] * 8)
    fewshot = DatasetBase().generate_fewshot_dataset(items, num_shots=4)
    assert "Creating a 4-shot dataset" in capsys.readouterr().out
    assert Counter(x.label for x in fewshot) == {0: 4, 1: 3, 2: 4}
    # A label with too few items is kept whole and in its original order.
    assert [x for x in fewshot if x.label == 1] == items[5:8]


def test_fewshot_follows_dassl_call_order_on_global_random(tmp_path):
    items = make_datums(tmp_path, [1, 0, 1, 0, 1, 0, 2])
    random.seed(7)
    fewshot = DatasetBase().generate_fewshot_dataset(items, num_shots=2, repeat=True)

    random.seed(7)  # the same draws, by hand, labels in first-appearance order (1, 0, 2)
    expected = random.sample([items[0], items[2], items[4]], 2)
    expected += random.sample([items[1], items[3], items[5]], 2)
    expected += random.choices([items[6]], k=2)
    assert fewshot == expected

    random.seed(7)
    assert DatasetBase().generate_fewshot_dataset(items, num_shots=2, repeat=True) == fewshot


def test_fewshot_repeat_and_multiple_sources(tmp_path):
    items = make_datums(tmp_path, [0, 0, 1])
    base = DatasetBase()
    with_repeat = base.generate_fewshot_dataset(items, num_shots=3, repeat=True)
    assert Counter(x.label for x in with_repeat) == {0: 3, 1: 3}
    assert all(x is items[2] for x in with_repeat if x.label == 1)

    train, val = base.generate_fewshot_dataset(items, items[:2], num_shots=1)
    assert [x.label for x in train] == [0, 1] and len(val) == 1

    assert base.generate_fewshot_dataset(items, num_shots=-1) is items
    assert base.generate_fewshot_dataset(items, items, num_shots=0) == (items, items)


# --------------------------------------------------------------------------- a registered dataset


@DATASET_REGISTRY.register(force=True)
class _TestDataTiny(DatasetBase):
    """Images under ROOT/{train,val,test}/{label}_{i}.png, classes from CLASSNAMES."""

    def __init__(self, cfg):
        splits = {}
        for split in ("train", "val", "test"):
            folder = os.path.join(cfg.DATASET.ROOT, split)
            splits[split] = [
                Datum(
                    impath=os.path.join(folder, name),
                    label=int(name.split("_")[0]),
                    classname=CLASSNAMES[int(name.split("_")[0])],
                )
                for name in (sorted(os.listdir(folder)) if os.path.isdir(folder) else [])
            ]
        super().__init__(train_x=splits["train"], val=splits["val"], test=splits["test"])


def write_tiny_dataset(root, counts=None):
    for split, count in (counts or {"train": 10, "val": 6, "test": 7}).items():
        for i in range(count):
            write_png(root / split / f"{i % 3}_{i:02d}.png", size=(40 + i, 30), color=(i, 50, 90))
    return str(root)


@pytest.fixture
def tiny_cfg(tmp_path):
    cfg = small_cfg(TRANSFORMS=COOP_TRANSFORMS)
    cfg.DATASET.NAME = "_TestDataTiny"
    cfg.DATASET.ROOT = write_tiny_dataset(tmp_path / "tiny")
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 4
    return cfg


def test_build_dataset_prints_and_rejects_unknown_names(tiny_cfg, capsys):
    dataset = build_dataset(tiny_cfg)
    assert "Loading dataset: _TestDataTiny" in capsys.readouterr().out
    assert len(dataset.train_x) == 10 and dataset.classnames == CLASSNAMES

    tiny_cfg.DATASET.NAME = "_TestDataTinx"
    with pytest.raises(ValueError, match=r"do you mean \[_TestDataTiny\]"):
        build_dataset(tiny_cfg)


def test_data_manager_loaders_and_summary(tiny_cfg, capsys):
    dm = DataManager(tiny_cfg)
    out = capsys.readouterr().out
    table = "\n".join([
        "---------  -------------",
        "Dataset    _TestDataTiny",
        "# classes  3",
        "# train_x  10",
        "# val      6",
        "# test     7",
        "---------  -------------",
    ])
    assert table in out
    assert "Building transform_train" in out and "Building transform_test" in out

    assert dm.num_classes == 3 and dm.num_source_domains == 0
    assert dm.lab2cname == {0: "cat", 1: "dog", 2: "fox"}
    assert dm.dataset.classnames == CLASSNAMES
    assert dm.train_loader_u is None
    # Training drops the partial last batch; evaluation keeps it.
    assert len(dm.train_loader_x) == 2
    assert (len(dm.val_loader), len(dm.test_loader)) == (2, 2)
    assert isinstance(dm.train_loader_x.sampler, RandomSampler)
    assert isinstance(dm.test_loader.sampler, SequentialSampler)
    assert dm.test_loader.pin_memory is False

    batch = next(iter(dm.train_loader_x))
    assert set(batch) == {"img", "label", "domain", "impath", "index"}
    assert batch["img"].shape == (4, 3, 32, 32) and batch["img"].dtype == torch.float32
    for key in ("label", "domain", "index"):
        assert batch[key].dtype == torch.int64 and batch[key].shape == (4,)
    assert isinstance(batch["impath"], list) and all(isinstance(p, str) for p in batch["impath"])

    test_batches = list(dm.test_loader)
    assert [len(b["label"]) for b in test_batches] == [4, 3]
    assert test_batches[0]["index"].tolist() == [0, 1, 2, 3]  # sequential order


def test_a_train_set_smaller_than_one_batch_keeps_its_only_batch(tiny_cfg):
    tiny_cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 16
    tiny_cfg.VERBOSE = False
    dm = DataManager(tiny_cfg)
    batches = list(dm.train_loader_x)
    assert len(dm.train_loader_x) == 1 and len(batches[0]["label"]) == 10


def test_data_manager_custom_transforms_and_no_val(tiny_cfg, tmp_path, capsys):
    counts = {"train": 3, "val": 0, "test": 2}
    tiny_cfg.DATASET.ROOT = write_tiny_dataset(tmp_path / "noval", counts)
    tiny_cfg.DATALOADER.TRAIN_X.SAMPLER = "SequentialSampler"
    custom = T.Compose([T.Resize((8, 8)), T.ToTensor()])
    dm = DataManager(tiny_cfg, custom_tfm_train=custom, custom_tfm_test=custom)
    out = capsys.readouterr().out
    assert "* Using custom transform for training" in out
    assert "* Using custom transform for testing" in out
    assert "# val" not in out and dm.val_loader is None
    assert next(iter(dm.train_loader_x))["img"].shape == (3, 3, 8, 8)


def test_build_data_loader_rejects_an_empty_result(tmp_path):
    items = make_datums(tmp_path, [0, 1])
    with pytest.raises(AssertionError, match="empty"):
        build_data_loader(small_cfg(), data_source=items[:0], batch_size=4, is_train=False)


# --------------------------------------------------------------------------- DatasetWrapper


def test_wrapper_names_an_unreadable_image(tmp_path):
    good = write_png(tmp_path / "good.png")
    item = Datum(impath=good, label=0)
    with open(good, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n this is not an image")
    wrapper = DatasetWrapper(small_cfg(), [item], transform=T.ToTensor())
    with pytest.raises(OSError, match=r'Cannot read image ".*good\.png"'):
        wrapper[0]


def test_wrapper_transform_lists_k_views_and_img0(tmp_path):
    items = make_datums(tmp_path, [1])
    cfg = small_cfg(TRANSFORMS=["normalize"])
    cfg.DATALOADER.K_TRANSFORMS = 2
    cfg.DATALOADER.RETURN_IMG0 = True
    to_tensor = T.Compose([T.Resize((8, 8)), T.ToTensor()])

    out = DatasetWrapper(cfg, items, transform=[to_tensor, to_tensor], is_train=True)[0]
    assert set(out) == {"label", "domain", "impath", "index", "img", "img2", "img0"}
    assert isinstance(out["img"], list) and len(out["img2"]) == 2
    assert out["img0"].shape == (3, 32, 32)
    assert out["img0"].min() < 0  # normalised, because "normalize" is in INPUT.TRANSFORMS

    # K_TRANSFORMS only applies while training.
    out = DatasetWrapper(cfg, items, transform=to_tensor, is_train=False)[0]
    assert out["img"].shape == (3, 8, 8)

    with pytest.raises(ValueError, match="transform is None"):
        DatasetWrapper(cfg, items, transform=None, is_train=True)
    cfg.DATALOADER.K_TRANSFORMS = 1
    assert isinstance(DatasetWrapper(cfg, items)[0]["img"], Image.Image)


# --------------------------------------------------------------------------- transforms


def test_coop_train_pipeline(capsys):
    tfm = build_transform(coop_cfg(), is_train=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Building transform_train",
        "+ random resized crop (size=(224, 224), scale=(0.08, 1.0))",
        "+ random flip",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
    ]
    crop, flip, to_tensor, normalize = tfm.transforms
    assert isinstance(crop, T.RandomResizedCrop) and isinstance(flip, T.RandomHorizontalFlip)
    assert isinstance(to_tensor, T.ToTensor) and isinstance(normalize, T.Normalize)
    assert crop.size == (224, 224) and crop.scale == (0.08, 1.0)
    assert crop.interpolation == INTERPOLATION_MODES["bicubic"]
    assert normalize.mean == CLIP_MEAN and normalize.std == CLIP_STD

    img = tfm(Image.new("RGB", (300, 200), (10, 20, 30)))
    assert img.shape == (3, 224, 224) and img.dtype == torch.float32


def test_coop_test_pipeline(capsys):
    tfm = build_transform(coop_cfg(), is_train=False)
    assert capsys.readouterr().out.splitlines() == [
        "Building transform_test",
        "+ resize the smaller edge to 224",
        "+ 224x224 center crop",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
    ]
    resize, crop, _, _ = tfm.transforms
    assert resize.size == 224 and crop.size == (224, 224)
    assert tfm(Image.new("RGB", (300, 200))).shape == (3, 224, 224)


def test_train_order_is_fixed_and_resize_only_without_a_crop(capsys):
    cfg = small_cfg()
    shuffled = build_transform(cfg, choices=["normalize", "random_flip", "random_resized_crop"])
    kinds = [type(t) for t in shuffled.transforms]
    assert kinds == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]

    plain = build_transform(cfg, choices=["random_flip"])
    assert [type(t) for t in plain.transforms] == [T.Resize, T.RandomHorizontalFlip, T.ToTensor]
    assert tuple(plain.transforms[0].size) == (32, 32)
    assert "+ resize to 32x32" in capsys.readouterr().out


def test_every_choice_builds_and_runs():
    choices = [
        "random_flip", "random_resized_crop", "normalize", "instance_norm", "random_crop",
        "random_translation", "center_crop", "cutout", "imagenet_policy", "cifar10_policy",
        "svhn_policy", "randaugment", "randaugment_fixmatch", "randaugment2",
        "gaussian_noise", "colorjitter", "randomgrayscale", "gaussian_blur",
    ]
    cfg = small_cfg(GB_K=3)
    img = Image.new("RGB", (50, 40), (120, 60, 30))
    for is_train in (True, False):
        out = build_transform(cfg, is_train=is_train, choices=choices)(img)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32


def test_instance_norm_only_pipeline_standardises_each_channel():
    cfg = small_cfg()
    img = Image.effect_noise((40, 40), 30).convert("RGB")
    out = build_transform(cfg, is_train=False, choices=["instance_norm"])(img)
    assert torch.allclose(out.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)


def test_bad_choices_and_no_transform(capsys):
    cfg = small_cfg()
    with pytest.raises(ValueError, match=r"random_fip.*random_flip"):
        build_transform(cfg, choices=["random_fip"])
    cfg.INPUT.INTERPOLATION = "lanczos"
    with pytest.raises(ValueError, match="bicubic"):
        build_transform(cfg)
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg) is None
    assert "Note: no transform is applied!" in capsys.readouterr().out


# --------------------------------------------------------------------------- samplers


def test_build_sampler_by_name(tmp_path):
    from engine.user_errors import is_user_error

    items = make_datums(tmp_path, [0, 1, 0, 1])
    assert isinstance(build_sampler("RandomSampler", data_source=items), RandomSampler)
    assert isinstance(build_sampler("SequentialSampler", data_source=items), SequentialSampler)
    with pytest.raises(ValueError, match="RandomSampler") as unknown:
        build_sampler("ShuffleSampler", data_source=items)
    with pytest.raises(ValueError, match="Dassl") as dassl_only:
        build_sampler("RandomDomainSampler", data_source=items, batch_size=4, n_domain=2)
    assert is_user_error(unknown.value) and is_user_error(dassl_only.value)
