"""The demo world: objects named by colour x texture x shape ("red striped triangle").

The world has 6 x 4 x 5 = 120 compositions. The Demo dataset uses 30 of them, chosen so
that every colour-shape pair occurs exactly once: its first half (the base classes of
the base-to-new protocol) and its second half (the new classes) then share every colour,
texture and shape, yet no new class repeats a colour-shape pair of a base class. The new
classes are held out of the demo CLIP's pre-training (tools/pretrain_demo_clip.py), so
zero-shot accuracy on them measures composition of seen words, not recall.
"""
from typing import NamedTuple

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple")
TEXTURES = ("plain", "striped", "checkered", "hollow")
SHAPES = ("circle", "square", "triangle", "cross", "star")

DEMO_CLASS_COUNT = len(COLOURS) * len(SHAPES)  # 30: every colour-shape pair once


class Composition(NamedTuple):
    colour: str
    texture: str
    shape: str

    @property
    def name(self):
        return f"{self.colour} {self.texture} {self.shape}"

    @property
    def folder(self):
        return self.name.replace(" ", "_")


def all_compositions():
    return [Composition(c, t, s) for c in COLOURS for t in TEXTURES for s in SHAPES]


def demo_compositions():
    """The Demo dataset's classes in label order.

    Class k pairs colour k mod 6 with shape k mod 5, which walks through all 30
    colour-shape pairs once (6 and 5 are coprime); the texture cycles every third class
    so each half of the list holds all four textures.
    """
    return [
        Composition(COLOURS[k % len(COLOURS)], TEXTURES[(k // 3) % len(TEXTURES)], SHAPES[k % len(SHAPES)])
        for k in range(DEMO_CLASS_COUNT)
    ]


def held_out_compositions():
    """Never shown in pre-training: the Demo dataset's new classes (its second half)."""
    classes = demo_compositions()
    return classes[(len(classes) + 1) // 2:]


def pretraining_compositions():
    """Every composition of the world except the held-out ones, in world order."""
    held_out = set(held_out_compositions())
    return [c for c in all_compositions() if c not in held_out]
