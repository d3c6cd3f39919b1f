"""Greyscale images wider than 8 bits (modes I;16, I, F): scaled by their value range, or refused by name."""
import numpy as np
import pytest
from PIL import Image

from datasets.image_check import image_problem
from engine.bundled.data.data_manager import CorruptImageError, read_image
from tests.fixtures.fake_datasets import make_fake_dataset
from tools import scan_images

RAMP_16 = np.arange(65536, dtype=np.uint16).reshape(256, 256)  # every 16-bit value once


def save(path, values, mode_expected):
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode == mode_expected, img.mode  # the test is about this mode
    return str(path)


def grey_of(path):
    rgb = np.asarray(read_image(path))
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0]


def expected_8bit(values, full_scale):
    # rounding half up, written independently of the reader; no ramp value lands on an exact half
    return np.floor(values.astype(np.float64) * 255 / full_scale + 0.5).astype(np.uint8)


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_16_bit_images_are_scaled_by_the_type_range(tmp_path, suffix):
    path = save(tmp_path / f"scan.{suffix}", RAMP_16, "I;16")
    with Image.open(path) as img:
        assert (np.asarray(img.convert("RGB")) == 255).mean() > 0.99, "PIL alone turns it white"
    grey = grey_of(path)
    assert np.array_equal(grey, expected_8bit(RAMP_16, 65535))
    assert np.array_equal(np.bincount(grey.ravel(), minlength=256)[[0, 1, 128, 255]], [129, 257, 257, 129])


def test_big_endian_16_bit_tiff_reads_like_little_endian(tmp_path):
    path = save(tmp_path / "scan.tif", RAMP_16.astype(">u2"), "I;16B")
    assert np.array_equal(grey_of(path), expected_8bit(RAMP_16, 65535))


@pytest.mark.parametrize("full_scale", [1, 255])
def test_float_images_in_0_1_or_0_255_keep_their_contrast(tmp_path, full_scale):
    values = np.linspace(0, full_scale, 64, dtype=np.float32).reshape(8, 8)
    path = save(tmp_path / "depth.tif", values, "F")
    assert np.array_equal(grey_of(path), expected_8bit(values, full_scale))


@pytest.mark.parametrize("high, full_scale", [(200, 255), (40000, 65535)])
def test_32_bit_integer_images_use_the_smallest_range_that_holds_them(tmp_path, high, full_scale):
    values = np.linspace(0, high, 64).round().astype(np.int32).reshape(8, 8)
    path = save(tmp_path / "counts.tif", values, "I")
    assert np.array_equal(grey_of(path), expected_8bit(values, full_scale))


@pytest.mark.parametrize("values, mode, shown", [
    (np.linspace(-1, 2, 64, dtype=np.float32).reshape(8, 8), "F", "[-1, 2]"),
    (np.full((8, 8), np.nan, dtype=np.float32), "F", "NaN"),
    (np.linspace(-5, 70000, 64).astype(np.int32).reshape(8, 8), "I", "[-5, 70000]"),
])
def test_values_outside_every_known_range_are_refused_naming_the_file(tmp_path, values, mode, shown):
    path = save(tmp_path / "odd.tif", values, mode)
    with pytest.raises(CorruptImageError) as info:
        read_image(path)
    message = str(info.value)
    assert path in message and shown in message and "\n" not in message
    assert shown in image_problem(path)


def test_scan_lists_an_image_with_an_unknown_value_range(tmp_path, capsys):
    make_fake_dataset(tmp_path, "caltech101")
    scanned = next((tmp_path / "caltech-101" / "101_ObjectCategories").rglob("*.jpg"))
    Image.fromarray(np.full((8, 8), 300.0, dtype=np.float32)).save(scanned, format="TIFF")
    assert scan_images.main(["--root", str(tmp_path), "--dataset", "caltech101"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{scanned}\t") and "[300, 300]" in out[0]


def test_ordinary_modes_are_converted_as_before(tmp_path):
    rgb = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    for mode in ("RGB", "L", "P", "RGBA", "CMYK", "1"):
        path = str(tmp_path / f"{mode}.png" if mode != "CMYK" else tmp_path / f"{mode}.jpg")
        Image.fromarray(rgb).convert(mode).save(path)
        with Image.open(path) as img:
            assert np.array_equal(np.asarray(read_image(path)), np.asarray(img.convert("RGB")))


def test_dassl_api_read_image_reads_wide_greyscale_like_the_loader(tmp_path):
    from engine.bundled.utils import read_image as utils_read_image

    path = save(tmp_path / "scan.png", RAMP_16, "I;16")
    grey = np.asarray(utils_read_image(path))[..., 0]
    assert np.array_equal(grey, expected_8bit(RAMP_16, 65535))
