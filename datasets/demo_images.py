"""Procedural pictures of demo-world objects (see datasets/demo_world.py) on 32x32 canvases.

Every picture is drawn from its own seed, so the pixels never depend on the order or the
number of pictures generated, and the same numpy/Pillow versions give the same bytes
everywhere. Natural variation: position, size, rotation, a tinted gradient background,
the exact hue and brightness of the colour, and pixel noise. The Demo dataset's pictures
add a class-specific shade (``draw_composition_image``); pre-training draws plain renders.
"""
import math

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
SUPERSAMPLE = 4  # shapes are drawn at 4x and averaged down, for anti-aliased edges
DEMO_SEED = 20240911

COLOUR_RGB = {
    "red": (215, 35, 35),
    "orange": (245, 135, 25),
    "yellow": (235, 215, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "purple": (135, 45, 170),
}
# Patterned parts that are "off" keep the hue, darkened, so the colour stays readable.
SHADE_OF_PATTERN = 0.35
HOLLOW_RIM = 0.3  # fraction of the radius that a hollow shape keeps as its outline


def _star(points=5, inner=0.45):
    return [
        ((1.0 if i % 2 == 0 else inner) * math.sin(math.pi * i / points),
         -(1.0 if i % 2 == 0 else inner) * math.cos(math.pi * i / points))
        for i in range(2 * points)
    ]


# Outlines in unit coordinates (radius about 1, y pointing down), drawn as polygons.
SHAPE_OUTLINES = {
    "circle": [(math.cos(2 * math.pi * i / 32), math.sin(2 * math.pi * i / 32)) for i in range(32)],
    "square": [(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)],
    "triangle": [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "star": _star(),
}


def _shape_mask(shape, cx, cy, radius, angle):
    """Coverage in [0, 1] of the rotated, scaled shape on the canvas (float32, HxW)."""
    cos, sin = math.cos(angle), math.sin(angle)
    big = IMAGE_SIZE * SUPERSAMPLE
    vertices = [
        (SUPERSAMPLE * (cx + radius * (x * cos - y * sin)), SUPERSAMPLE * (cy + radius * (x * sin + y * cos)))
        for x, y in SHAPE_OUTLINES[shape]
    ]
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).polygon(vertices, fill=255)
    fine = np.asarray(canvas, dtype=np.float32) / 255.0
    return fine.reshape(IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE).mean(axis=(1, 3))


def _pattern(texture, cx, cy, angle, phase):
    """1 where the object shows its full colour, 0 where it shows the dark shade."""
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + 0.5
    # the pattern turns with the object: coordinates in the object's own frame
    u = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle) + phase
    v = -(xs - cx) * math.sin(angle) + (ys - cy) * math.cos(angle) + phase
    if texture == "striped":
        return (np.floor(v / 2.0) % 2 == 0).astype(np.float32)
    if texture == "checkered":
        return ((np.floor(u / 2.5) + np.floor(v / 2.5)) % 2 == 0).astype(np.float32)
    if texture in ("plain", "hollow"):
        return np.ones((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _background(rng):
    grey = rng.uniform(70, 210)
    tint = rng.uniform(-15, 15, size=3)
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE - 0.5
    direction = rng.uniform(0, 2 * math.pi)
    gradient = rng.uniform(0, 50) * (xs * math.cos(direction) + ys * math.sin(direction))
    return grey + tint[None, None, :] + gradient[:, :, None]


def render_composition(composition, seed):
    """An HxWx3 uint8 picture of ``composition`` (colour, texture, shape) drawn from ``seed``.

    ``seed`` is anything numpy's default_rng accepts (e.g. a list of ints).
    """
    colour, texture, shape = composition
    rng = np.random.default_rng(seed)
    radius = rng.uniform(7.0, 12.0)
    margin = radius * 0.8
    cx, cy = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
    angle = rng.uniform(-0.5, 0.5)  # up to ~30 degrees: a turned square never becomes a diamond
    fill = np.clip(np.asarray(COLOUR_RGB[colour]) * rng.uniform(0.85, 1.1) + rng.uniform(-18, 18, 3), 0, 255)

    coverage = _shape_mask(shape, cx, cy, radius, angle)
    if texture == "hollow":
        coverage = np.clip(coverage - _shape_mask(shape, cx, cy, radius * (1 - HOLLOW_RIM), angle), 0, 1)
    lit = _pattern(texture, cx, cy, angle, rng.uniform(0, 4))[:, :, None]
    object_rgb = fill * (lit + (1 - lit) * SHADE_OF_PATTERN)
    alpha = coverage[:, :, None]
    pixels = _background(rng) * (1 - alpha) + object_rgb * alpha
    pixels += rng.normal(0.0, 6.0, size=pixels.shape)
    return np.clip(pixels, 0, 255).round().astype(np.uint8)


# Each class of the Demo dataset comes in a shade of its own: its pictures' hues are turned
# by a fixed, class-specific angle (up to SHADE_MAX_DEGREES either way) that the demo CLIP
# never saw in pre-training, as a downstream dataset's class names describe its pictures
# only approximately. A few shots show a class's shade, but knowing one class's shade says
# nothing about another's: what prompt learning gains on the base classes does not carry
# over to the new ones, which is where base-to-new methods differ (docs/demo.md).
SHADE_MAX_DEGREES = 60.0
SHADE_STREAM = 1  # keeps the shades' random draws apart from the pictures' streams


def class_shade_degrees(class_index, stream=DEMO_SEED):
    """The hue turn, in degrees, of every picture of the Demo dataset's class ``class_index``."""
    rng = np.random.default_rng([stream, SHADE_STREAM, class_index])
    return float(rng.uniform(-SHADE_MAX_DEGREES, SHADE_MAX_DEGREES))


def turn_hue(pixels, degrees):
    """``pixels`` (HxWx3 uint8) with every colour turned ``degrees`` about the grey axis.

    A rotation of RGB space about (1, 1, 1): greys stay, hues turn, brightness is kept.
    Written as explicit per-channel sums in float64 rather than a matrix product, whose
    BLAS kernels may round differently between machines; the pictures must be the same
    bytes everywhere.
    """
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    diagonal = cos + (1.0 - cos) / 3.0
    off_plus = (1.0 - cos) / 3.0 + sin / math.sqrt(3.0)
    off_minus = (1.0 - cos) / 3.0 - sin / math.sqrt(3.0)
    r, g, b = (pixels[:, :, channel].astype(np.float64) for channel in range(3))
    turned = np.stack([
        diagonal * r + off_minus * g + off_plus * b,
        off_plus * r + diagonal * g + off_minus * b,
        off_minus * r + off_plus * g + diagonal * b,
    ], axis=2)
    return np.clip(turned, 0, 255).round().astype(np.uint8)


def draw_composition_image(composition, class_index, image_index, stream=DEMO_SEED):
    """A PIL picture of the dataset's ``image_index``-th image of class ``class_index``."""
    pixels = render_composition(composition, [stream, class_index, image_index])
    return Image.fromarray(turn_hue(pixels, class_shade_degrees(class_index, stream)), "RGB")
