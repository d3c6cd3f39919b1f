"""The demo world, its held-out classes, and the shipped demo CLIP that learns on it."""
import hashlib
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datasets.demo import IMAGES_PER_SPLIT, demo_classnames
from datasets.demo_images import (
    DEMO_SEED, SHADE_MAX_DEGREES, class_shade_degrees, render_composition, turn_hue,
)
from datasets.demo_world import (
    COLOURS, SHAPES, TEXTURES, Composition, all_compositions, demo_compositions,
    held_out_compositions, pretraining_compositions,
)

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT  # noqa: F401  (conftest sets the offline env)

DEMO_CONFIGS = os.path.join(REPO_ROOT, "configs", "trainers")
# What tools/pretrain_demo_clip.py printed for the shipped file (docs/demo.md); the
# test allows a small margin for other CPUs' rounding.
REPORTED_HELD_OUT_ACCURACY = 0.853  # 256 of 300 held-out test pictures
MARGIN = 0.03
SHORT_RUN_EPOCHS = 20
PINNED_RENDER_SHA1 = "da95772aa261c50bffd47a66f1b025126554fb3c"  # numpy 2.4, Pillow 13


def test_world_is_colour_texture_shape_with_plain_names():
    world = all_compositions()
    assert len(world) == len(set(world)) == 6 * 4 * 5 == 120
    assert Composition("red", "striped", "triangle").name == "red striped triangle"
    assert Composition("red", "striped", "triangle").folder == "red_striped_triangle"


def test_base_and_new_halves_share_every_word_but_no_colour_shape_pair():
    classes = demo_compositions()
    base, new = classes[:15], classes[15:]
    assert len(set(classes)) == 30
    assert {(c.colour, c.shape) for c in classes} == {(c, s) for c in COLOURS for s in SHAPES}
    for half in (base, new):
        assert {c.colour for c in half} == set(COLOURS)
        assert {c.texture for c in half} == set(TEXTURES)
        assert {c.shape for c in half} == set(SHAPES)
    assert held_out_compositions() == new
    assert demo_classnames()[15] == "green striped circle"


def test_pretraining_sees_every_composition_but_the_new_classes():
    pretraining = pretraining_compositions()
    assert len(pretraining) == 105
    assert not set(pretraining) & set(held_out_compositions())
    assert set(demo_compositions()[:15]) <= set(pretraining)


def test_rendering_is_deterministic_and_seeded_per_image():
    composition = Composition("blue", "checkered", "star")
    first = render_composition(composition, [DEMO_SEED, 3, 7])
    assert first.shape == (32, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, render_composition(composition, [DEMO_SEED, 3, 7]))
    assert not np.array_equal(first, render_composition(composition, [DEMO_SEED, 3, 8]))
    # Pinned bytes: a change to the renderer changes the dataset and invalidates the
    # shipped CLIP's reported accuracy, so it must be deliberate.
    assert hashlib.sha1(first.tobytes()).hexdigest() == PINNED_RENDER_SHA1


def test_each_demo_class_has_a_fixed_shade_of_its_own():
    shades = [class_shade_degrees(label) for label in range(len(demo_compositions()))]
    assert shades == [class_shade_degrees(label) for label in range(len(shades))]
    assert len(set(shades)) == len(shades)
    assert all(abs(shade) <= SHADE_MAX_DEGREES for shade in shades)
    assert max(abs(shade) for shade in shades) > SHADE_MAX_DEGREES / 2


def test_turning_the_hue_keeps_greys_and_brightness_and_turns_colours():
    grey = np.full((2, 2, 3), 128, np.uint8)
    assert (turn_hue(grey, 37.0) == grey).all()
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 210
    assert turn_hue(red, 120.0)[0, 0].tolist() == [0, 210, 0]  # a third of the circle: green
    assert turn_hue(red, -120.0)[0, 0].tolist() == [0, 0, 210]  # the other way: blue
    assert turn_hue(red, 0.0)[0, 0].tolist() == [210, 0, 0]


def test_pretraining_images_come_from_their_own_seed_stream():
    from tools.pretrain_demo_clip import PRETRAIN_STREAM

    assert PRETRAIN_STREAM != DEMO_SEED
    composition = demo_compositions()[0]
    dataset_image = render_composition(composition, [DEMO_SEED, 0, 0])
    pretraining_image = render_composition(composition, [PRETRAIN_STREAM, 0, 0])
    assert not np.array_equal(dataset_image, pretraining_image)


def test_windowed_text_encoding_equals_the_full_context():
    from models.clip_loader import load_clip, tokenize
    from tools.pretrain_demo_clip import encode_text

    model = load_clip("demo-clip", pretrained=False)
    tokens = tokenize(["a photo of a purple checkered triangle.", "a red plain star."])
    with torch.no_grad():
        full = F.normalize(model.encode_text(tokens), dim=-1)
        torch.testing.assert_close(encode_text(model, tokens), full, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- the shipped CLIP


def held_out_test_images():
    """The Demo test pictures of the new classes, normalised as the trainer configs do."""
    from tools.pretrain_demo_clip import demo_test_images, normalise

    test_count = dict(IMAGES_PER_SPLIT)["test"]
    pixels, labels = demo_test_images(held_out_compositions(), per_class=test_count)
    return normalise(pixels), labels


def test_shipped_weights_load_by_name_and_match_the_architecture():
    from models.clip_loader import load_clip, resolve_weights

    path = resolve_weights("demo-clip")
    assert path == os.path.join(REPO_ROOT, "models", "weights", "demo_clip.safetensors")
    assert os.path.getsize(path) < 6_000_000
    model = load_clip("demo-clip")
    assert model.visual.image_size == (32, 32)
    assert model.token_embedding.weight.shape == (49408, 48)
    assert not any(p.requires_grad for p in model.parameters())


def test_shipped_clip_zero_shot_on_held_out_classes_is_far_above_chance():
    from models.clip_loader import load_clip, tokenize

    model = load_clip("demo-clip")
    images, labels = held_out_test_images()
    prompts = [f"a photo of a {c.name}." for c in held_out_compositions()]
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenize(prompts)), dim=-1)
        image = F.normalize(model.encode_image(images), dim=-1)
    accuracy = float(((image @ text.t()).argmax(dim=1) == labels).float().mean())
    chance = 1 / len(prompts)
    assert accuracy >= REPORTED_HELD_OUT_ACCURACY - MARGIN
    assert accuracy > 5 * chance


@pytest.mark.slow
def test_a_short_prompt_tuning_run_beats_zero_shot_on_base_classes(make_cfg, tmp_path, restore_stdout):
    # The Demo dataset's class-specific shades (datasets/demo_images.py) cost zero-shot
    # CLIP accuracy; a few shots of each base class show its shade.
    from engine import build_trainer, set_random_seed

    opts = ("DATASET.SUBSAMPLE_CLASSES", "base", "DATASET.NUM_SHOTS", 16)
    zero_shot = build_trainer(make_cfg("ZeroshotCLIP", *opts,
                                       config_file=os.path.join(DEMO_CONFIGS, "CoOp", "demo_clip.yaml"),
                                       output_dir=str(tmp_path / "zero_shot")))
    zero_shot_accuracy = zero_shot.test()

    # Two fifths of the demo recipe's epochs, hard labels only: the fastest visible gain.
    cfg = make_cfg("RPP", *opts, "TEST.NO_TEST", "True", "OPTIM.MAX_EPOCH", SHORT_RUN_EPOCHS,
                   config_file=os.path.join(DEMO_CONFIGS, "RPP", "demo_clip_no_kd.yaml"),
                   output_dir=str(tmp_path / "rpp"))
    set_random_seed(cfg.SEED)
    rpp = build_trainer(cfg)
    rpp.train()
    rpp.close_writer()
    rpp_accuracy = rpp.test()
    print(f"zero-shot {zero_shot_accuracy:.1f}, RPP after {SHORT_RUN_EPOCHS} epochs {rpp_accuracy:.1f}")
    assert rpp_accuracy > zero_shot_accuracy + 2.0, (zero_shot_accuracy, rpp_accuracy)
