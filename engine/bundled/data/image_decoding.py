"""Image file -> RGB, with greyscale images of more than 8 bits brought to 0..255 by their value range.

PIL's ``convert("RGB")`` clips 16-bit, 32-bit integer and float greyscale images
(modes ``I;16*``, ``I``, ``F``) to 0..255 without scaling: a 16-bit scan turns
all white, a float image in [0, 1] all black, and nothing says so. The rule here:

* ``I;16`` (and ``I;16B``/``L``/``N``): unsigned 16-bit, scaled by the type's
  range, 0..65535 -> 0..255;
* ``I`` (32-bit integers; what older Pillow made of 16-bit PNGs): the smallest
  unsigned range holding every value, 0..255 (kept) or 0..65535 (scaled as
  ``I;16``); negative values or values above 65535 are refused;
* ``F`` (32-bit float): 0..1 (scaled by 255) if every value lies there, else
  0..255 (kept); values outside [0, 255], NaN or infinity are refused.

Every other mode goes through ``convert("RGB")`` as before. A refusal is a
``ValueError`` naming the mode and the values found; ``read_image`` turns it into a
``CorruptImageError`` naming the file.
"""
import numpy as np
from PIL import Image

UINT8_MAX, UINT16_MAX = 255, 65535


class ImageRangeError(ValueError):
    """A wide greyscale image whose values fit none of the ranges the rule knows."""


def open_rgb(path) -> Image.Image:
    """The image file at ``path``, decoded and converted to RGB (see the module docstring)."""
    with Image.open(path) as img:
        return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "F" or img.mode.startswith("I"):
        return Image.fromarray(_wide_grey_to_uint8(img)).convert("RGB")
    return img.convert("RGB")


def _wide_grey_to_uint8(img: Image.Image) -> np.ndarray:
    values = np.asarray(img)
    if values.size == 0:
        return values.astype(np.uint8)
    if img.mode.startswith("I;16"):
        return _scaled(values, UINT16_MAX)
    low, high = values.min(), values.max()
    if img.mode == "F":
        if not np.isfinite(values).all():
            raise ImageRangeError("mode F image holds NaN or infinite values")
        if low >= 0 and high <= 1:
            return _scaled(values, 1)
        if low >= 0 and high <= UINT8_MAX:
            return _scaled(values, UINT8_MAX)
        raise ImageRangeError(
            f"mode F image values span [{low:g}, {high:g}], outside [0, 1] and [0, 255]; "
            "save it as an 8- or 16-bit image")
    if low >= 0 and high <= UINT8_MAX:
        return _scaled(values, UINT8_MAX)
    if low >= 0 and high <= UINT16_MAX:
        return _scaled(values, UINT16_MAX)
    raise ImageRangeError(
        f"mode {img.mode} image values span [{low}, {high}], outside [0, 65535]; "
        "save it as an 8- or 16-bit image")


def _scaled(values: np.ndarray, full_scale) -> np.ndarray:
    scaled = values.astype(np.float64) * (UINT8_MAX / full_scale)
    return np.clip(np.rint(scaled), 0, UINT8_MAX).astype(np.uint8)
