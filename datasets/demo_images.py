"""Deterministic synthetic images for the Demo dataset: coloured shapes on 32x32 canvases.

Each image is drawn from its own seed (class, index), so the bytes never depend on the
order or the number of images generated, and the same versions of numpy/Pillow give the
same files everywhere.
"""
import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
DEMO_SEED = 20240911

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 50, 170),
    "orange": (245, 140, 30),
}


def _shape_outline(shape, cx, cy, r):
    if shape == "circle":
        return "ellipse", [cx - r, cy - r, cx + r, cy + r]
    if shape == "square":
        return "rectangle", [cx - r, cy - r, cx + r, cy + r]
    if shape == "triangle":
        return "polygon", [(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)]
    if shape == "cross":
        w = max(2, r // 3)
        return "cross", ([cx - r, cy - w, cx + r, cy + w], [cx - w, cy - r, cx + w, cy + r])
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape_image(colour, shape, class_index, image_index):
    """A noisy RGB image of one coloured shape with random position, size and background."""
    rng = np.random.default_rng([DEMO_SEED, class_index, image_index])
    background = tuple(int(v) for v in rng.integers(170, 240, size=3))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(7, 12))
    cx, cy = (int(v) for v in rng.integers(IMAGE_SIZE // 2 - 5, IMAGE_SIZE // 2 + 6, size=2))
    fill = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in COLOURS[colour])
    kind, geometry = _shape_outline(shape, cx, cy, r)
    if kind == "cross":
        for box in geometry:
            draw.rectangle(box, fill=fill)
    else:
        getattr(draw, kind)(geometry, fill=fill)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0.0, 8.0, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
