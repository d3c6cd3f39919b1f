"""PIL image operations behind Dassl's RandAugment variants, drawing from the same RNGs.

Each op is ``op(img, value) -> img`` on an RGB PIL image. The geometric ops flip the
sign of ``value`` with one ``random.random()`` draw and the box-cutout op places its box
with two ``numpy.random.uniform`` draws, exactly as Dassl's ops do, so that seeding
``random`` and ``numpy`` gives the same images on both engines. Pixels uncovered by a
shear, translation or rotation are black; resampling is nearest-neighbour (PIL's
default), as in Dassl.
"""
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

CUTOUT_FILL = (125, 123, 114)
SOLARIZE_ADD_THRESHOLD = 128


def _maybe_negated(value):
    # One draw per call even when the value is 0, so the RNG stream stays in step.
    return -value if random.random() > 0.5 else value


def _affine(img, coefficients):
    return img.transform(img.size, Image.Transform.AFFINE, coefficients)


def identity(img, _):
    return img


def auto_contrast(img, _):
    return ImageOps.autocontrast(img)


def equalize(img, _):
    return ImageOps.equalize(img)


def invert(img, _):
    return ImageOps.invert(img)


def posterize(img, bits):
    return ImageOps.posterize(img, int(bits))


def solarize(img, threshold):
    return ImageOps.solarize(img, threshold)


def solarize_add(img, addition):
    """Brighten by ``addition`` (saturating, truncated to uint8), then solarize at 128."""
    brightened = np.clip(np.asarray(img).astype(np.int64) + addition, 0, 255)
    return ImageOps.solarize(Image.fromarray(brightened.astype(np.uint8)), SOLARIZE_ADD_THRESHOLD)


def brightness(img, factor):
    return ImageEnhance.Brightness(img).enhance(factor)


def color(img, factor):
    return ImageEnhance.Color(img).enhance(factor)


def contrast(img, factor):
    return ImageEnhance.Contrast(img).enhance(factor)


def sharpness(img, factor):
    return ImageEnhance.Sharpness(img).enhance(factor)


def rotate(img, degrees):
    return img.rotate(_maybe_negated(degrees))


def shear_x(img, shear):
    return _affine(img, (1, _maybe_negated(shear), 0, 0, 1, 0))


def shear_y(img, shear):
    return _affine(img, (1, 0, 0, _maybe_negated(shear), 1, 0))


def translate_x_fraction(img, fraction):
    """Shift by ``fraction`` of the width."""
    return _affine(img, (1, 0, _maybe_negated(fraction) * img.size[0], 0, 1, 0))


def translate_y_fraction(img, fraction):
    """Shift by ``fraction`` of the height."""
    return _affine(img, (1, 0, 0, 0, 1, _maybe_negated(fraction) * img.size[1]))


def translate_x_pixels(img, pixels):
    return _affine(img, (1, 0, _maybe_negated(pixels), 0, 1, 0))


def translate_y_pixels(img, pixels):
    return _affine(img, (1, 0, 0, 0, 1, _maybe_negated(pixels)))


def cutout_pixels(img, side):
    """Paint a grey ``side``-pixel square (clipped at the border).

    The centre is drawn as ``numpy.random.uniform(width)``, i.e. with low=width and
    high=1, a value in (1, width]: Dassl's argument order, kept so that both engines
    place the same box.
    """
    width, height = img.size
    x = np.random.uniform(width)
    y = np.random.uniform(height)
    left = int(max(0, x - side / 2.0))
    top = int(max(0, y - side / 2.0))
    box = (left, top, min(width, left + side), min(height, top + side))
    img = img.copy()
    ImageDraw.Draw(img).rectangle(box, CUTOUT_FILL)
    return img
