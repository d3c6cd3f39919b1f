"""The bundled ``build_transform`` draws exactly Dassl's augmentations.

With the same seeds of ``random``, ``numpy`` and ``torch``, our pipeline and the real
Dassl's (loaded file by file from the checkout) turn the same images into identical
tensors, for every choice in AVAILABLE_CHOICES alone and in the recipes' combinations;
they print the same ``+ ...`` lines and leave all three generators in the same state.
Every choice compares exactly, so no statistical comparison is needed.

Dassl's AutoAugment policies and its ``randaugment`` SolarizeAdd use ``np.int``,
which NumPy 1.24 removed; the tests lend NumPy that alias so Dassl's code can run.
"""
import contextlib
import io
import random

import numpy as np
import pytest
import torch
from PIL import Image

from engine.bundled.config import get_cfg_default
from engine.bundled.data import autoaugment, randaugment
from engine.bundled.data.transforms import AVAILABLE_CHOICES, build_transform
from tests.fixtures.real_dassl import dassl_checkout, why_no_real_dassl

COOP = ["random_resized_crop", "random_flip", "normalize"]
POMP_RANDAUG2 = ["random_resized_crop", "random_flip", "randaugment2", "normalize"]
CHOICE_SETS = {name: [name] for name in AVAILABLE_CHOICES}
CHOICE_SETS.update({
    "coop": COOP,
    "pomp randaug2": POMP_RANDAUG2,
    "translation+cutout+noise+instance_norm": [
        "random_translation", "cutout", "gaussian_noise", "instance_norm", "normalize"],
    "everything": list(AVAILABLE_CHOICES),
})
# Draws per image: the random-op choices need many to use every op and sub-policy (which
# the coverage tests assert); the others draw a few numbers per image and are slower.
ROUNDS = 40
FEW_ROUNDS = 10
RANDOM_OP_CHOICES = {"imagenet_policy", "cifar10_policy", "svhn_policy", "randaugment",
                     "randaugment_fixmatch", "randaugment2"}


@pytest.fixture(scope="module")
def dassl_build_transform():
    if dassl_checkout() is None:
        pytest.skip(why_no_real_dassl())
    from tests.fixtures.dassl_files import load_dassl_module

    return load_dassl_module("data.transforms.transforms").build_transform


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Thread start-up dominates torch ops on 32x32 images (blur: 100 ms -> 0.3 ms).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def numpy_int_alias(monkeypatch):
    monkeypatch.setattr(np, "int", int, raising=False)


def make_cfg(**overrides):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = (32, 32)
    # Not bilinear, so a step that ignores (or wrongly uses) it shows.
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.GB_K = 3
    for key, value in overrides.items():
        setattr(cfg.INPUT, key, value)
    return cfg


def sample_images():
    """Three small RGB images of varied content, so every op changes something."""
    rng = np.random.RandomState(0)
    ramp = np.add.outer(np.arange(40), np.arange(48)).astype(np.uint8) * 2
    smooth = np.stack([ramp, ramp[::-1], 255 - ramp], axis=-1)
    noisy = rng.randint(0, 256, size=(37, 53, 3)).astype(np.uint8)
    dark = (rng.rand(44, 44, 3) * 60 + 20).astype(np.uint8)
    return [Image.fromarray(a) for a in (smooth, noisy, dark)]


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states():
    return random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state()


def built(build, cfg, choices, is_train):
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        transform = build(cfg, is_train=is_train, choices=choices)
    return transform, log.getvalue()


def draw(transform, images, seed, rounds=ROUNDS):
    seed_everything(seed)
    outputs = [transform(img) for _ in range(rounds) for img in images]
    return outputs, rng_states()


def assert_same_draws(ours, theirs):
    (our_out, our_rng), (their_out, their_rng) = ours, theirs
    assert len(our_out) == len(their_out)
    for index, (a, b) in enumerate(zip(our_out, their_out)):
        assert a.shape == b.shape and a.dtype == b.dtype, index
        assert torch.equal(a, b), f"draw {index} differs (max |diff| {(a - b).abs().max()})"
    assert our_rng[0] == their_rng[0], "Python random stream out of step"
    assert our_rng[1] == their_rng[1], "numpy stream out of step"
    assert torch.equal(our_rng[2], their_rng[2]), "torch stream out of step"


@pytest.mark.parametrize("name", list(CHOICE_SETS))
def test_train_pipeline_equals_dassl(dassl_build_transform, name):
    choices, cfg, images = CHOICE_SETS[name], make_cfg(), sample_images()
    ours, our_log = built(build_transform, cfg, choices, True)
    theirs, their_log = built(dassl_build_transform, cfg, choices, True)
    assert our_log == their_log
    rounds = ROUNDS if name in RANDOM_OP_CHOICES else FEW_ROUNDS
    for seed in (0, 1):
        assert_same_draws(draw(ours, images, seed, rounds), draw(theirs, images, seed, rounds))


@pytest.mark.parametrize("name", ["coop", "instance_norm", "everything"])
def test_test_pipeline_equals_dassl(dassl_build_transform, name):
    choices, cfg, images = CHOICE_SETS[name], make_cfg(), sample_images()
    ours, our_log = built(build_transform, cfg, choices, False)
    theirs, their_log = built(dassl_build_transform, cfg, choices, False)
    assert our_log == their_log
    assert_same_draws(draw(ours, images, 0, rounds=1), draw(theirs, images, 0, rounds=1))


@pytest.mark.parametrize("overrides", [
    dict(RANDAUGMENT_N=3, RANDAUGMENT_M=30),
    dict(RANDAUGMENT_N=1, RANDAUGMENT_M=0, CUTOUT_N=3, CUTOUT_LEN=7, CROP_PADDING=2,
         GN_MEAN=0.1, GN_STD=0.3, RGS_P=0.7, GB_P=0.9, INTERPOLATION="nearest",
         RRCROP_SCALE=(0.5, 1.0)),
], ids=["strong randaugment", "other parameters"])
def test_parameters_are_passed_like_dassl(dassl_build_transform, overrides):
    cfg, images = make_cfg(**overrides), sample_images()
    choices = list(AVAILABLE_CHOICES)
    ours, our_log = built(build_transform, cfg, choices, True)
    theirs, their_log = built(dassl_build_transform, cfg, choices, True)
    assert our_log == their_log
    assert_same_draws(draw(ours, images, 3, FEW_ROUNDS), draw(theirs, images, 3, FEW_ROUNDS))


def _counting(calls, key, fn):
    def counted(*args):
        calls[key] = calls.get(key, 0) + 1
        return fn(*args)
    return counted


@pytest.mark.parametrize("name, cls", [
    ("randaugment", randaugment.RandAugment), ("randaugment2", randaugment.RandAugment2),
    ("randaugment_fixmatch", randaugment.RandAugmentFixMatch),
])
def test_the_equal_draws_cover_every_randaugment_op(name, cls):
    """Guards the equality test: ROUNDS draws exercise every op of the table."""
    transform, _ = built(build_transform, make_cfg(), [name], True)
    (augment,) = [t for t in transform.transforms if isinstance(t, cls)]
    calls = {}
    augment.ops = tuple((_counting(calls, op.__name__, op), lo, hi) for op, lo, hi in cls.ops)
    for seed in (0, 1):
        draw(transform, sample_images(), seed)
    assert sorted(calls) == sorted(op.__name__ for op, _, _ in cls.ops)


@pytest.mark.parametrize("name", ["imagenet_policy", "cifar10_policy", "svhn_policy"])
def test_the_equal_draws_cover_every_sub_policy(name):
    transform, _ = built(build_transform, make_cfg(), [name], True)
    (policy,) = [t for t in transform.transforms
                 if isinstance(t, autoaugment.AutoAugmentPolicy)]
    calls = {}
    policy.sub_policies = [_counting(calls, i, sub) for i, sub in enumerate(policy.sub_policies)]
    for seed in (0, 1):
        draw(transform, sample_images(), seed)
    assert sorted(calls) == list(range(25))


@pytest.mark.parametrize("ours, theirs", [
    ("imagenet_policy", "ImageNetPolicy"), ("cifar10_policy", "CIFAR10Policy"),
    ("svhn_policy", "SVHNPolicy"),
])
def test_policy_tables_equal_dassl(dassl_build_transform, ours, theirs):
    """Probabilities and magnitudes row by row (the draws check the ops themselves)."""
    from tests.fixtures.dassl_files import load_dassl_module

    dassl_policy = getattr(load_dassl_module("data.transforms.autoaugment"), theirs)()
    our_policy = getattr(autoaugment, ours)()
    assert repr(our_policy) == repr(dassl_policy)
    assert len(our_policy.sub_policies) == len(dassl_policy.policies)
    for mine, dassls in zip(our_policy.sub_policies, dassl_policy.policies):
        (p1, _, m1), (p2, _, m2) = mine.steps
        assert (p1, m1, p2, m2) == (dassls.p1, dassls.magnitude1, dassls.p2, dassls.magnitude2)
