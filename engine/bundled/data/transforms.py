"""build_transform: Dassl's train/test image pipelines from ``cfg.INPUT``.

The train pipeline applies the chosen augmentations in one fixed order, whatever
order ``INPUT.TRANSFORMS`` lists them in, and prints one ``+ ...`` line per step (in
Dassl's words) so the log records exactly what ran. The test pipeline is the same for
every choice list: resize the smaller edge, center crop, tensor, optional normalisation.

Every step draws from the generator Dassl's step draws from (Python ``random`` for the
translation, the RandAugment variants, the AutoAugment policies and the noise coin;
``numpy`` for cutout; torch for the torchvision steps and the noise itself), in the
same order, so with the same seeds both engines produce the same tensors.
"""
import random

import numpy as np
import torch
from torchvision.transforms import (
    CenterCrop, ColorJitter, Compose, GaussianBlur, InterpolationMode, Normalize, RandomApply,
    RandomCrop, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, Resize, ToTensor,
)
from torchvision.transforms import functional as F

from engine.bundled.data.autoaugment import cifar10_policy, imagenet_policy, svhn_policy
from engine.bundled.data.randaugment import (
    MAX_MAGNITUDE, RandAugment, RandAugment2, RandAugmentFixMatch,
)
from engine.config_errors import ConfigError

AVAILABLE_CHOICES = (
    "random_flip", "random_resized_crop", "normalize", "instance_norm", "random_crop",
    "random_translation", "center_crop", "cutout", "imagenet_policy", "cifar10_policy",
    "svhn_policy", "randaugment", "randaugment_fixmatch", "randaugment2", "gaussian_noise",
    "colorjitter", "randomgrayscale", "gaussian_blur",
)

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

# (name in INPUT.TRANSFORMS, log line, factory), in the order they run.
_AUTOAUGMENT_POLICIES = (
    ("imagenet_policy", "imagenet policy", imagenet_policy),
    ("cifar10_policy", "cifar10 policy", cifar10_policy),
    ("svhn_policy", "svhn policy", svhn_policy),
)


class Random2DTranslation:
    """With probability ``p``: enlarge by 1/8 and random-crop back to (height, width);
    otherwise just resize to (height, width).

    The crop offset is drawn left first, then top, as in Dassl.
    """

    def __init__(self, height, width, p=0.5, interpolation=InterpolationMode.BILINEAR):
        self.height, self.width, self.p, self.interpolation = height, width, p, interpolation

    def __call__(self, img):
        if random.random() > self.p:
            return F.resize(img, [self.height, self.width], self.interpolation)
        big_h, big_w = round(self.height * 1.125), round(self.width * 1.125)
        img = F.resize(img, [big_h, big_w], self.interpolation)
        left = round(random.uniform(0, big_w - self.width))
        top = round(random.uniform(0, big_h - self.height))
        return F.crop(img, top, left, self.height, self.width)


class Cutout:
    """Zero ``n_holes`` random ``length`` x ``length`` squares of a [C, H, W] tensor
    (squares are clipped at the border, so their centres may lie anywhere).

    The centres come from ``numpy.random`` (row, then column), as in Dassl.
    """

    def __init__(self, n_holes=1, length=16):
        self.n_holes, self.length = n_holes, length

    def __call__(self, img):
        _, height, width = img.shape
        mask = torch.ones(height, width, dtype=torch.float32)
        half = self.length // 2
        for _ in range(self.n_holes):
            cy, cx = np.random.randint(height), np.random.randint(width)
            mask[max(0, cy - half):min(height, cy + half),
                 max(0, cx - half):min(width, cx + half)] = 0
        return img * mask


class GaussianNoise:
    """Add N(mean, std) noise to a tensor with probability ``p``."""

    def __init__(self, mean=0.0, std=0.15, p=0.5):
        self.mean, self.std, self.p = mean, std, p

    def __call__(self, img):
        if random.random() > self.p:
            return img
        # Summed in Dassl's order, (noise * std + mean) first, for bit-equal results.
        noise = torch.randn(img.shape) * self.std + self.mean
        return img + noise


class InstanceNormalization:
    """Normalise each channel of a [C, H, W] tensor by its own spatial mean and std."""

    def __init__(self, eps=1e-8):
        self.eps = eps

    def __call__(self, img):
        flat = img.reshape(img.shape[0], -1)
        mean = flat.mean(1).view(-1, 1, 1)
        std = flat.std(1).view(-1, 1, 1)
        return (img - mean) / (std + self.eps)


class _Pipeline:
    """Collects the steps of a Compose and logs each one as ``+ <description>``."""

    def __init__(self, header):
        print(header)
        self.steps = []

    def add(self, line, transform):
        print(f"+ {line}")
        self.steps.append(transform)

    def compose(self):
        return Compose(self.steps)


def _interpolation(cfg):
    name = cfg.INPUT.INTERPOLATION
    if name not in INTERPOLATION_MODES:
        raise ConfigError(
            f"INPUT.INTERPOLATION={name!r} is not one of {sorted(INTERPOLATION_MODES)}"
        )
    return INTERPOLATION_MODES[name]


def _check_choices(choices):
    unknown = [c for c in choices if c not in AVAILABLE_CHOICES]
    if unknown:
        raise ConfigError(
            f"Unknown transform(s) {unknown} in INPUT.TRANSFORMS; valid choices are "
            f"{list(AVAILABLE_CHOICES)}"
        )


def build_transform(cfg, is_train=True, choices=None):
    """A torchvision ``Compose`` for training or testing, or None if NO_TRANSFORM."""
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    _check_choices(choices)
    interp = _interpolation(cfg)
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_train(cfg, choices, interp, normalize)
    return _build_test(cfg, choices, interp, normalize)


def _build_train(cfg, choices, interp, normalize):
    inp = cfg.INPUT
    height, width = inp.SIZE
    pipeline = _Pipeline("Building transform_train")
    add = pipeline.add

    # Geometry first: the crops produce SIZE themselves, otherwise resize to it.
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        add(f"resize to {height}x{width}", Resize(tuple(inp.SIZE), interpolation=interp))
    if "random_translation" in choices:
        # Dassl leaves this one at bilinear whatever INPUT.INTERPOLATION says.
        add("random translation", Random2DTranslation(height, width))
    if "random_crop" in choices:
        add(f"random crop (padding = {inp.CROP_PADDING})",
            RandomCrop(tuple(inp.SIZE), padding=inp.CROP_PADDING))
    if "random_resized_crop" in choices:
        add(f"random resized crop (size={inp.SIZE}, scale={inp.RRCROP_SCALE})",
            RandomResizedCrop(tuple(inp.SIZE), scale=tuple(inp.RRCROP_SCALE),
                              interpolation=interp))
    if "random_flip" in choices:
        add("random flip", RandomHorizontalFlip())

    # Photometric augmentations on the PIL image.
    for name, line, policy in _AUTOAUGMENT_POLICIES:
        if name in choices:
            add(line, policy())
    if "randaugment" in choices:
        n, m = inp.RANDAUGMENT_N, inp.RANDAUGMENT_M
        if not 0 <= m <= MAX_MAGNITUDE:
            raise ConfigError(f"INPUT.RANDAUGMENT_M must be in [0, {MAX_MAGNITUDE}], got {m}")
        add(f"randaugment (n={n}, m={m})", RandAugment(n, m))
    if "randaugment_fixmatch" in choices:
        n = inp.RANDAUGMENT_N
        add(f"randaugment_fixmatch (n={n})", RandAugmentFixMatch(n))
    if "randaugment2" in choices:
        n = inp.RANDAUGMENT_N
        add(f"randaugment2 (n={n})", RandAugment2(n))
    if "colorjitter" in choices:
        b, c, s, h = inp.COLORJITTER_B, inp.COLORJITTER_C, inp.COLORJITTER_S, inp.COLORJITTER_H
        add(f"color jitter (brightness={b}, contrast={c}, saturation={s}, hue={h})",
            ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    if "randomgrayscale" in choices:
        add("random gray scale", RandomGrayscale(p=inp.RGS_P))
    if "gaussian_blur" in choices:
        add(f"gaussian blur (kernel={inp.GB_K})",
            RandomApply([GaussianBlur(inp.GB_K)], p=inp.GB_P))

    add("to torch tensor of range [0, 1]", ToTensor())

    # Tensor-level steps.
    if "cutout" in choices:
        add(f"cutout (n_holes={inp.CUTOUT_N}, length={inp.CUTOUT_LEN})",
            Cutout(inp.CUTOUT_N, inp.CUTOUT_LEN))
    if "normalize" in choices:
        add(f"normalization (mean={inp.PIXEL_MEAN}, std={inp.PIXEL_STD})", normalize)
    if "gaussian_noise" in choices:
        add(f"gaussian noise (mean={inp.GN_MEAN}, std={inp.GN_STD})",
            GaussianNoise(inp.GN_MEAN, inp.GN_STD))
    if "instance_norm" in choices:
        add("instance normalization", InstanceNormalization())

    return pipeline.compose()


def _build_test(cfg, choices, interp, normalize):
    inp = cfg.INPUT
    height, width = inp.SIZE
    pipeline = _Pipeline("Building transform_test")
    add = pipeline.add

    # An int size resizes the smaller edge, keeping the aspect ratio for the crop.
    add(f"resize the smaller edge to {max(inp.SIZE)}",
        Resize(max(inp.SIZE), interpolation=interp))
    add(f"{height}x{width} center crop", CenterCrop(tuple(inp.SIZE)))
    add("to torch tensor of range [0, 1]", ToTensor())
    if "normalize" in choices:
        add(f"normalization (mean={inp.PIXEL_MEAN}, std={inp.PIXEL_STD})", normalize)
    if "instance_norm" in choices:
        add("instance normalization", InstanceNormalization())
    return pipeline.compose()
