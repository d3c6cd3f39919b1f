"""Dassl's RandAugment variants, AutoAugment policies and tensor augmentations, checked
without Dassl: op tables, RNG draws (replayed here on an independent generator) and
pixel results computed here by hand. test_transforms_match_dassl.py compares against the
real Dassl where one is available.
"""
import math
import random

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as F

from engine.bundled.data import augment_ops, autoaugment, randaugment
from engine.bundled.data.transforms import Cutout, GaussianNoise, Random2DTranslation

# Dassl's tables, as (op name, low, high), in Dassl's order.
RANDAUGMENT_TABLE = [
    ("auto_contrast", 0, 1), ("equalize", 0, 1), ("invert", 0, 1), ("rotate", 0, 30),
    ("posterize", 4, 8), ("solarize", 0, 256), ("solarize_add", 0, 110), ("color", 0.1, 1.9),
    ("contrast", 0.1, 1.9), ("brightness", 0.1, 1.9), ("sharpness", 0.1, 1.9),
    ("shear_x", 0, 0.3), ("shear_y", 0, 0.3), ("cutout_pixels", 0, 40),
    ("translate_x_pixels", 0, 100), ("translate_y_pixels", 0, 100),
]
RANDAUGMENT2_TABLE = [
    ("auto_contrast", 0, 1), ("brightness", 0.1, 1.9), ("color", 0.1, 1.9),
    ("contrast", 0.1, 1.9), ("equalize", 0, 1), ("identity", 0, 1), ("invert", 0, 1),
    ("posterize", 4, 8), ("rotate", -30, 30), ("sharpness", 0.1, 1.9), ("shear_x", -0.3, 0.3),
    ("shear_y", -0.3, 0.3), ("solarize", 0, 256), ("translate_x_fraction", -0.3, 0.3),
    ("translate_y_fraction", -0.3, 0.3),
]
ENHANCEMENTS = ("brightness", "color", "contrast", "sharpness")
FIXMATCH_TABLE = [
    (name, 0.05, 0.95) if name in ENHANCEMENTS else (name, lo, hi)
    for name, lo, hi in RANDAUGMENT2_TABLE if name != "invert"
]


def image(seed=0, size=(16, 16)):
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, size=(size[1], size[0], 3)).astype(np.uint8))


def recording(table, calls):
    """The table with each op replaced by one that records (name, value) and draws nothing."""
    def recorder(name):
        def op(img, value):
            calls.append((name, value))
            return img
        return op
    return tuple((recorder(op.__name__), lo, hi) for op, lo, hi in table)


def expected_randaugment(rng, table, n, m):
    picks = [table[math.floor(rng.random() * len(table))] for _ in range(n)]
    return [(name, m / 30 * (hi - lo) + lo) for name, lo, hi in picks]


def expected_randaugment2(rng, table, n, p=0.6):
    picks = [table[math.floor(rng.random() * len(table))] for _ in range(n)]
    calls = []
    for name, lo, hi in picks:
        if rng.random() <= p:
            calls.append((name, rng.random() * (hi - lo) + lo))
    return calls


def expected_fixmatch(rng, table, n):
    picks = [table[math.floor(rng.random() * len(table))] for _ in range(n)]
    return [(name, rng.random() * (hi - lo) + lo) for name, lo, hi in picks]


@pytest.mark.parametrize("cls, table, expected", [
    (randaugment.RandAugment, RANDAUGMENT_TABLE, lambda rng, n: expected_randaugment(
        rng, RANDAUGMENT_TABLE, n, m=10)),
    (randaugment.RandAugment2, RANDAUGMENT2_TABLE, lambda rng, n: expected_randaugment2(
        rng, RANDAUGMENT2_TABLE, n)),
    (randaugment.RandAugmentFixMatch, FIXMATCH_TABLE, lambda rng, n: expected_fixmatch(
        rng, FIXMATCH_TABLE, n)),
], ids=["randaugment", "randaugment2", "randaugment_fixmatch"])
def test_randaugment_variants_pick_ops_and_magnitudes_as_dassl(cls, table, expected):
    assert [(op.__name__, lo, hi) for op, lo, hi in cls.ops] == table
    for n in (1, 2, 3):
        augment = cls(n)
        calls = []
        augment.ops = recording(cls.ops, calls)
        random.seed(n)
        img = image()
        for _ in range(300):
            augment(img)
        rng = random.Random(n)
        want = [call for _ in range(300) for call in expected(rng, n)]
        assert [name for name, _ in calls] == [name for name, _ in want]
        assert [value for _, value in calls] == pytest.approx([value for _, value in want],
                                                              rel=1e-12, abs=1e-12)
        assert {name for name, _ in calls} == {name for name, _, _ in table}


def test_randaugment_rejects_magnitudes_beyond_30():
    with pytest.raises(ValueError, match="30"):
        randaugment.RandAugment(2, 31)


def test_point_ops_by_hand():
    img = image(1)
    pixels = np.asarray(img).astype(np.int64)
    assert np.array_equal(np.asarray(augment_ops.invert(img, 0.7)), 255 - pixels)
    brighter = np.clip(pixels + 30.7, 0, 255).astype(np.uint8).astype(np.int64)
    want = np.where(brighter >= 128, 255 - brighter, brighter)
    assert np.array_equal(np.asarray(augment_ops.solarize_add(img, 30.7)), want)
    assert np.array_equal(np.asarray(augment_ops.solarize(img, 100.5)),
                          np.where(pixels >= 100.5, 255 - pixels, pixels))
    assert np.array_equal(np.asarray(augment_ops.posterize(img, 5.9)), pixels & 0b11111000)
    assert augment_ops.identity(img, 3) is img


@pytest.mark.parametrize("seed", range(6))
def test_geometric_ops_flip_their_sign_on_one_random_draw(seed):
    img = image(2)
    pixels = np.asarray(img)
    negated = random.Random(seed).random() > 0.5

    random.seed(seed)
    shifted = np.asarray(augment_ops.translate_x_fraction(img, 0.25))  # 4 of 16 columns
    # PIL's affine reads output (x, y) from input (x + c, y); uncovered pixels are black.
    if negated:
        assert np.array_equal(shifted[:, 4:], pixels[:, :-4]) and not shifted[:, :4].any()
    else:
        assert np.array_equal(shifted[:, :-4], pixels[:, 4:]) and not shifted[:, -4:].any()

    random.seed(seed)
    shifted = np.asarray(augment_ops.translate_y_pixels(img, 3))
    if negated:
        assert np.array_equal(shifted[3:], pixels[:-3]) and not shifted[:3].any()
    else:
        assert np.array_equal(shifted[:-3], pixels[3:]) and not shifted[-3:].any()

    random.seed(seed)
    turned = np.asarray(augment_ops.rotate(img, 90))  # PIL turns positive angles anticlockwise
    assert np.array_equal(turned, np.rot90(pixels, -1 if negated else 1))


def test_cutout_pixels_paints_a_grey_box_placed_by_numpy():
    img = Image.new("RGB", (20, 10), (0, 0, 0))
    np.random.seed(5)
    python_state = random.getstate()
    out = np.asarray(augment_ops.cutout_pixels(img, 6))
    assert random.getstate() == python_state
    rng = np.random.RandomState(5)
    # numpy's uniform(low=width) with the default high=1.0: a value in (1, width].
    cx, cy = 20 + (1 - 20) * rng.random_sample(), 10 + (1 - 10) * rng.random_sample()
    left, top = int(max(0, cx - 3)), int(max(0, cy - 3))
    painted = np.zeros((10, 20), bool)
    painted[top:min(10, top + 6) + 1, left:min(20, left + 6) + 1] = True  # PIL boxes are inclusive
    assert np.array_equal(out.any(axis=-1), painted)
    assert (out[painted] == (125, 123, 114)).all()
    assert not np.asarray(img).any()  # the input is left alone


def test_autoaugment_magnitude_bins():
    bins = autoaugment.MAGNITUDES
    assert bins["posterize"] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert bins["rotate"] == pytest.approx([30 * i / 9 for i in range(10)])
    assert bins["solarize"] == pytest.approx([256 - 256 * i / 9 for i in range(10)])
    assert bins["translate_x"][-1] == pytest.approx(150 / 331)
    assert bins["color"] == pytest.approx([0.1 * i for i in range(10)])


@pytest.mark.parametrize("factory, rows", [
    (autoaugment.imagenet_policy, autoaugment.IMAGENET_SUB_POLICIES),
    (autoaugment.cifar10_policy, autoaugment.CIFAR10_SUB_POLICIES),
    (autoaugment.svhn_policy, autoaugment.SVHN_SUB_POLICIES),
])
def test_policy_draws_a_sub_policy_then_one_coin_per_op(monkeypatch, factory, rows):
    calls = []

    def recorder(name):
        def op(img, magnitude):
            calls.append((name, magnitude))
            return img
        return op

    monkeypatch.setattr(autoaugment, "OPS", {name: recorder(name) for name in autoaugment.OPS})
    policy = factory()
    assert len(rows) == len(policy.sub_policies) == 25
    random.seed(7)
    for _ in range(500):
        policy(image())
    rng, want = random.Random(7), []
    for _ in range(500):
        p1, op1, i1, p2, op2, i2 = rows[rng.randrange(25)]
        for p, op, i in ((p1, op1, i1), (p2, op2, i2)):
            if rng.random() < p:
                want.append((op, autoaugment.MAGNITUDES[op][i]))
    assert calls == want


@pytest.mark.parametrize("op", ["shear_x", "translate_y", "rotate"])
def test_policy_geometry_fills_grey(op):
    white = Image.new("RGB", (16, 16), (255, 255, 255))
    magnitude = autoaugment.MAGNITUDES[op][9]
    out = np.asarray(autoaugment.OPS[op](white, magnitude)).reshape(-1, 3)
    colours = {tuple(c) for c in out}
    assert (128, 128, 128) in colours and (0, 0, 0) not in colours


def test_random_translation_draws_the_left_offset_first():
    img = image(3, size=(40, 30))
    for seed in range(8):
        random.seed(seed)
        out = Random2DTranslation(24, 32)(img)  # height 24, width 32
        rng = random.Random(seed)
        if rng.random() > 0.5:
            want = F.resize(img, [24, 32])
        else:
            left, top = round(rng.uniform(0, 4)), round(rng.uniform(0, 3))  # 36 - 32, 27 - 24
            want = F.crop(F.resize(img, [27, 36]), top, left, 24, 32)
        assert np.array_equal(np.asarray(out), np.asarray(want)), seed


def test_cutout_draws_from_numpy_row_first():
    img = torch.ones(3, 12, 10)
    np.random.seed(11)
    python_state = random.getstate()
    out = Cutout(n_holes=2, length=4)(img)
    assert random.getstate() == python_state
    rng = np.random.RandomState(11)
    want = torch.ones(12, 10)
    for _ in range(2):
        cy, cx = rng.randint(12), rng.randint(10)
        want[max(0, cy - 2):cy + 2, max(0, cx - 2):cx + 2] = 0
    assert torch.equal(out, want.expand(3, -1, -1))


def test_gaussian_noise_adds_mean_plus_scaled_torch_noise():
    img = torch.rand(3, 5, 5)
    torch.manual_seed(0)
    noisy = GaussianNoise(mean=0.25, std=0.5, p=1.0)(img)
    torch.manual_seed(0)
    assert torch.equal(noisy, img + (torch.randn(3, 5, 5) * 0.5 + 0.25))
    assert GaussianNoise(p=0.0)(img) is img  # unless random() returns exactly 0.0


def test_bad_transform_settings_are_one_line_user_errors():
    from engine.bundled.config import get_cfg_default
    from engine.bundled.data.transforms import build_transform
    from engine.user_errors import is_user_error

    for key, value, choices in [("TRANSFORMS", ["random_fip"], None),
                                ("INTERPOLATION", "lanczos", None),
                                ("RANDAUGMENT_M", 31, ["randaugment"])]:
        cfg = get_cfg_default()
        setattr(cfg.INPUT, key, value)
        with pytest.raises(ValueError) as info:
            build_transform(cfg, choices=choices)
        assert is_user_error(info.value) and key in str(info.value), key
