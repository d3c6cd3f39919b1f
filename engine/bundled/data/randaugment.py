"""Dassl's three RandAugment variants (``randaugment``, ``randaugment2``, ``randaugment_fixmatch``).

Each picks ``n`` ops with ``random.choices`` (repeats allowed) from its own table of
``(op, low, high)`` and applies them in the order picked, mapping a magnitude in [0, 1]
linearly onto [low, high]:

* ``RandAugment(n, m)``: the fixed magnitude ``m / 30``; 16 ops (the EfficientNet list).
* ``RandAugment2(n, p)``: each picked op runs with probability ``p`` (0.6), at a magnitude
  drawn afresh; 15 ops, including Invert. POMP's pre-training recipe uses this one.
* ``RandAugmentFixMatch(n)``: every picked op runs, at a magnitude drawn afresh; 14 ops.

The order of the tables and of the ``random`` draws is Dassl's, so a seeded ``random``
(and ``numpy``, for the cutout op) gives the same images on both engines.
"""
import random

from engine.bundled.data import augment_ops as ops

MAX_MAGNITUDE = 30

# Magnitudes are absolute: degrees, pixels, posterize bits, solarize thresholds.
RANDAUGMENT_OPS = (
    (ops.auto_contrast, 0, 1),
    (ops.equalize, 0, 1),
    (ops.invert, 0, 1),
    (ops.rotate, 0, 30),
    (ops.posterize, 4, 8),
    (ops.solarize, 0, 256),
    (ops.solarize_add, 0, 110),
    (ops.color, 0.1, 1.9),
    (ops.contrast, 0.1, 1.9),
    (ops.brightness, 0.1, 1.9),
    (ops.sharpness, 0.1, 1.9),
    (ops.shear_x, 0.0, 0.3),
    (ops.shear_y, 0.0, 0.3),
    (ops.cutout_pixels, 0, 40),
    (ops.translate_x_pixels, 0.0, 100),
    (ops.translate_y_pixels, 0.0, 100),
)

# Signed ranges; translations are fractions of the image side.
RANDAUGMENT2_OPS = (
    (ops.auto_contrast, 0, 1),
    (ops.brightness, 0.1, 1.9),
    (ops.color, 0.1, 1.9),
    (ops.contrast, 0.1, 1.9),
    (ops.equalize, 0, 1),
    (ops.identity, 0, 1),
    (ops.invert, 0, 1),
    (ops.posterize, 4, 8),
    (ops.rotate, -30, 30),
    (ops.sharpness, 0.1, 1.9),
    (ops.shear_x, -0.3, 0.3),
    (ops.shear_y, -0.3, 0.3),
    (ops.solarize, 0, 256),
    (ops.translate_x_fraction, -0.3, 0.3),
    (ops.translate_y_fraction, -0.3, 0.3),
)

# RANDAUGMENT2_OPS without Invert, with enhancement factors below 1 only.
FIXMATCH_OPS = (
    (ops.auto_contrast, 0, 1),
    (ops.brightness, 0.05, 0.95),
    (ops.color, 0.05, 0.95),
    (ops.contrast, 0.05, 0.95),
    (ops.equalize, 0, 1),
    (ops.identity, 0, 1),
    (ops.posterize, 4, 8),
    (ops.rotate, -30, 30),
    (ops.sharpness, 0.05, 0.95),
    (ops.shear_x, -0.3, 0.3),
    (ops.shear_y, -0.3, 0.3),
    (ops.solarize, 0, 256),
    (ops.translate_x_fraction, -0.3, 0.3),
    (ops.translate_y_fraction, -0.3, 0.3),
)


def _scaled(fraction, low, high):
    return fraction * (high - low) + low


class RandAugment:
    """``n`` ops from RANDAUGMENT_OPS, all at magnitude ``m`` out of 30."""

    ops = RANDAUGMENT_OPS

    def __init__(self, n=2, m=10):
        if not 0 <= m <= MAX_MAGNITUDE:
            raise ValueError(f"RandAugment magnitude must be in [0, {MAX_MAGNITUDE}], got {m}")
        self.n, self.m = n, m

    def __call__(self, img):
        for op, low, high in random.choices(self.ops, k=self.n):
            img = op(img, _scaled(self.m / MAX_MAGNITUDE, low, high))
        return img

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n}, m={self.m})"


class RandAugment2:
    """``n`` ops from RANDAUGMENT2_OPS, each kept with probability ``p``, random magnitude."""

    ops = RANDAUGMENT2_OPS

    def __init__(self, n=2, p=0.6):
        self.n, self.p = n, p

    def __call__(self, img):
        for op, low, high in random.choices(self.ops, k=self.n):
            if random.random() > self.p:
                continue
            img = op(img, _scaled(random.random(), low, high))
        return img

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n}, p={self.p})"


class RandAugmentFixMatch:
    """``n`` ops from FIXMATCH_OPS, each at a random magnitude."""

    ops = FIXMATCH_OPS

    def __init__(self, n=2):
        self.n = n

    def __call__(self, img):
        for op, low, high in random.choices(self.ops, k=self.n):
            img = op(img, _scaled(random.random(), low, high))
        return img

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n})"
