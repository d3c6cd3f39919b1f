"""Dassl's AutoAugment policies (``imagenet_policy``, ``cifar10_policy``, ``svhn_policy``).

A policy picks one of its 25 sub-policies uniformly (``random.choice``); a sub-policy
runs two ops in turn, each with its own probability (one ``random.random()`` draw per
op, drawn even when the op is skipped). An op's strength is one of 10 magnitude bins.
Unlike the RandAugment ops, these fill uncovered pixels with grey (128, 128, 128),
shear with bicubic resampling and draw the sign of a signed op with
``random.choice((-1, 1))``; rotation is always counter-clockwise. These are Dassl's
tables and RNG calls (they differ from torchvision's ``AutoAugment``), so a seeded
``random`` gives the same images on both engines.
"""
import random

import numpy as np
from PIL import Image

from engine.bundled.data import augment_ops

FILL = (128, 128, 128)
MAGNITUDE_BINS = 10


def _bins(start, stop):
    return np.linspace(start, stop, MAGNITUDE_BINS).tolist()


# The value of each magnitude index 0..9, per op.
MAGNITUDES = {
    "shear_x": _bins(0, 0.3),
    "shear_y": _bins(0, 0.3),
    "translate_x": _bins(0, 150 / 331),
    "translate_y": _bins(0, 150 / 331),
    "rotate": _bins(0, 30),
    "color": _bins(0.0, 0.9),
    "contrast": _bins(0.0, 0.9),
    "sharpness": _bins(0.0, 0.9),
    "brightness": _bins(0.0, 0.9),
    "posterize": [int(bits) for bits in np.round(np.linspace(8, 4, MAGNITUDE_BINS))],
    "solarize": _bins(256, 0),
    "auto_contrast": [0] * MAGNITUDE_BINS,
    "equalize": [0] * MAGNITUDE_BINS,
    "invert": [0] * MAGNITUDE_BINS,
}


def _random_sign():
    return random.choice((-1, 1))


def _filled_affine(img, coefficients, resample=Image.Resampling.NEAREST):
    return img.transform(img.size, Image.Transform.AFFINE, coefficients, resample,
                         fillcolor=FILL)


def _shear_x(img, shear):
    return _filled_affine(img, (1, shear * _random_sign(), 0, 0, 1, 0), Image.Resampling.BICUBIC)


def _shear_y(img, shear):
    return _filled_affine(img, (1, 0, 0, shear * _random_sign(), 1, 0), Image.Resampling.BICUBIC)


def _translate_x(img, fraction):
    return _filled_affine(img, (1, 0, fraction * img.size[0] * _random_sign(), 0, 1, 0))


def _translate_y(img, fraction):
    return _filled_affine(img, (1, 0, 0, 0, 1, fraction * img.size[1] * _random_sign()))


def _rotate(img, degrees):
    # Rotating with an alpha channel marks the uncovered corners, which become grey.
    rotated = img.convert("RGBA").rotate(degrees)
    grey = Image.new("RGBA", rotated.size, (FILL[0],) * 4)
    return Image.composite(rotated, grey, rotated).convert(img.mode)


def _enhancement(enhance):
    def op(img, strength):
        return enhance(img, 1 + strength * _random_sign())
    return op


OPS = {
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
    "rotate": _rotate,
    "color": _enhancement(augment_ops.color),
    "contrast": _enhancement(augment_ops.contrast),
    "sharpness": _enhancement(augment_ops.sharpness),
    "brightness": _enhancement(augment_ops.brightness),
    "posterize": augment_ops.posterize,
    "solarize": augment_ops.solarize,
    "auto_contrast": augment_ops.auto_contrast,
    "equalize": augment_ops.equalize,
    "invert": augment_ops.invert,
}

# Sub-policies as (probability, op, magnitude index) twice, in Dassl's order (repeats
# included: they weight the uniform pick).
IMAGENET_SUB_POLICIES = (
    (0.4, "posterize", 8, 0.6, "rotate", 9),
    (0.6, "solarize", 5, 0.6, "auto_contrast", 5),
    (0.8, "equalize", 8, 0.6, "equalize", 3),
    (0.6, "posterize", 7, 0.6, "posterize", 6),
    (0.4, "equalize", 7, 0.2, "solarize", 4),
    (0.4, "equalize", 4, 0.8, "rotate", 8),
    (0.6, "solarize", 3, 0.6, "equalize", 7),
    (0.8, "posterize", 5, 1.0, "equalize", 2),
    (0.2, "rotate", 3, 0.6, "solarize", 8),
    (0.6, "equalize", 8, 0.4, "posterize", 6),
    (0.8, "rotate", 8, 0.4, "color", 0),
    (0.4, "rotate", 9, 0.6, "equalize", 2),
    (0.0, "equalize", 7, 0.8, "equalize", 8),
    (0.6, "invert", 4, 1.0, "equalize", 8),
    (0.6, "color", 4, 1.0, "contrast", 8),
    (0.8, "rotate", 8, 1.0, "color", 2),
    (0.8, "color", 8, 0.8, "solarize", 7),
    (0.4, "sharpness", 7, 0.6, "invert", 8),
    (0.6, "shear_x", 5, 1.0, "equalize", 9),
    (0.4, "color", 0, 0.6, "equalize", 3),
    (0.4, "equalize", 7, 0.2, "solarize", 4),
    (0.6, "solarize", 5, 0.6, "auto_contrast", 5),
    (0.6, "invert", 4, 1.0, "equalize", 8),
    (0.6, "color", 4, 1.0, "contrast", 8),
    (0.8, "equalize", 8, 0.6, "equalize", 3),
)

CIFAR10_SUB_POLICIES = (
    (0.1, "invert", 7, 0.2, "contrast", 6),
    (0.7, "rotate", 2, 0.3, "translate_x", 9),
    (0.8, "sharpness", 1, 0.9, "sharpness", 3),
    (0.5, "shear_y", 8, 0.7, "translate_y", 9),
    (0.5, "auto_contrast", 8, 0.9, "equalize", 2),
    (0.2, "shear_y", 7, 0.3, "posterize", 7),
    (0.4, "color", 3, 0.6, "brightness", 7),
    (0.3, "sharpness", 9, 0.7, "brightness", 9),
    (0.6, "equalize", 5, 0.5, "equalize", 1),
    (0.6, "contrast", 7, 0.6, "sharpness", 5),
    (0.7, "color", 7, 0.5, "translate_x", 8),
    (0.3, "equalize", 7, 0.4, "auto_contrast", 8),
    (0.4, "translate_y", 3, 0.2, "sharpness", 6),
    (0.9, "brightness", 6, 0.2, "color", 8),
    (0.5, "solarize", 2, 0.0, "invert", 3),
    (0.2, "equalize", 0, 0.6, "auto_contrast", 0),
    (0.2, "equalize", 8, 0.6, "equalize", 4),
    (0.9, "color", 9, 0.6, "equalize", 6),
    (0.8, "auto_contrast", 4, 0.2, "solarize", 8),
    (0.1, "brightness", 3, 0.7, "color", 0),
    (0.4, "solarize", 5, 0.9, "auto_contrast", 3),
    (0.9, "translate_y", 9, 0.7, "translate_y", 9),
    (0.9, "auto_contrast", 2, 0.8, "solarize", 3),
    (0.8, "equalize", 8, 0.1, "invert", 3),
    (0.7, "translate_y", 9, 0.9, "auto_contrast", 1),
)

SVHN_SUB_POLICIES = (
    (0.9, "shear_x", 4, 0.2, "invert", 3),
    (0.9, "shear_y", 8, 0.7, "invert", 5),
    (0.6, "equalize", 5, 0.6, "solarize", 6),
    (0.9, "invert", 3, 0.6, "equalize", 3),
    (0.6, "equalize", 1, 0.9, "rotate", 3),
    (0.9, "shear_x", 4, 0.8, "auto_contrast", 3),
    (0.9, "shear_y", 8, 0.4, "invert", 5),
    (0.9, "shear_y", 5, 0.2, "solarize", 6),
    (0.9, "invert", 6, 0.8, "auto_contrast", 1),
    (0.6, "equalize", 3, 0.9, "rotate", 3),
    (0.9, "shear_x", 4, 0.3, "solarize", 3),
    (0.8, "shear_y", 8, 0.7, "invert", 4),
    (0.9, "equalize", 5, 0.6, "translate_y", 6),
    (0.9, "invert", 4, 0.6, "equalize", 7),
    (0.3, "contrast", 3, 0.8, "rotate", 4),
    (0.8, "invert", 5, 0.0, "translate_y", 2),
    (0.7, "shear_y", 6, 0.4, "solarize", 8),
    (0.6, "invert", 4, 0.8, "rotate", 4),
    (0.3, "shear_y", 7, 0.9, "translate_x", 3),
    (0.1, "shear_x", 6, 0.6, "invert", 5),
    (0.7, "solarize", 2, 0.6, "translate_y", 7),
    (0.8, "shear_y", 4, 0.8, "invert", 8),
    (0.7, "shear_x", 9, 0.8, "translate_y", 3),
    (0.8, "shear_y", 5, 0.7, "auto_contrast", 3),
    (0.7, "shear_x", 2, 0.1, "invert", 5),
)


class SubPolicy:
    """Two ops, each applied with its own probability at a fixed magnitude."""

    def __init__(self, p1, op1, index1, p2, op2, index2):
        self.steps = (
            (p1, OPS[op1], MAGNITUDES[op1][index1]),
            (p2, OPS[op2], MAGNITUDES[op2][index2]),
        )
        self.names = (op1, op2)

    def __call__(self, img):
        for probability, op, magnitude in self.steps:
            if random.random() < probability:
                img = op(img, magnitude)
        return img


class AutoAugmentPolicy:
    """One uniformly chosen sub-policy per image."""

    def __init__(self, name, sub_policies):
        self.name = name
        self.sub_policies = [SubPolicy(*row) for row in sub_policies]

    def __call__(self, img):
        return random.choice(self.sub_policies)(img)

    def __repr__(self):
        return f"AutoAugment {self.name} Policy"


def imagenet_policy():
    return AutoAugmentPolicy("ImageNet", IMAGENET_SUB_POLICIES)


def cifar10_policy():
    return AutoAugmentPolicy("CIFAR10", CIFAR10_SUB_POLICIES)


def svhn_policy():
    return AutoAugmentPolicy("SVHN", SVHN_SUB_POLICIES)
