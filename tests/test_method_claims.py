"""docs/method.md says what the code does: the table of which query prompts reach the loss."""
import os
import re

import pytest
import torch.nn.functional as F

from conftest import REPO_ROOT

RPP_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "RPP", "tiny_vit.yaml")
TINY_VIT_LAYERS = 3  # per tower (models/backbones.py)


def documented_query_gradients():
    """{(RESIDUAL, depth): set of layers} from the table in docs/method.md."""
    with open(os.path.join(REPO_ROOT, "docs", "method.md"), encoding="utf-8") as f:
        text = f.read()
    rows = re.findall(r"^\| `(query|input)` \| (\d) of 3 \| ([^|]+) \|$", text, re.M)
    table = {}
    for residual, depth, layers in rows:
        layers = layers.strip()
        found = {int(n) for n in re.findall(r"\d", layers)}
        table[residual, int(depth)] = found if layers != "none" else set()
    return table


def test_the_method_page_has_the_table():
    assert set(documented_query_gradients()) == {("query", 2), ("query", 3), ("input", 2), ("input", 3)}


@pytest.mark.parametrize("residual, depth", [("query", 2), ("query", 3), ("input", 2), ("input", 3)])
def test_query_prompts_get_a_gradient_where_the_method_page_says(make_cfg, restore_stdout, residual, depth):
    from engine import build_trainer

    cfg = make_cfg("RPP", "DATASET.NUM_SHOTS", 2, "TRAINER.RPP.KD", False, "TRAINER.RPP.RESIDUAL", residual,
                   "TRAINER.RPP.PROMPT_DEPTH_TEXT", depth, "TRAINER.RPP.PROMPT_DEPTH_VISION", depth,
                   "TRAINER.RPP.QKV_INIT", "independent", config_file=RPP_CONFIG)
    trainer = build_trainer(cfg)
    batch = next(iter(trainer.train_loader_x))
    trainer.set_model_mode("train")
    image, label = trainer.parse_batch_train(batch)
    logits, _ = trainer.training_logits(image, label)
    F.cross_entropy(logits, label).backward()
    expected = documented_query_gradients()[residual, depth]
    learner = trainer.model.prompt_learner
    for side in ("text_prompts", "vision_prompts"):
        prompts = getattr(learner, side)
        assert len(prompts.query) == depth <= TINY_VIT_LAYERS
        reached = {layer for layer, param in enumerate(prompts.query)
                   if param.grad is not None and param.grad.abs().sum() > 0}
        assert reached == expected, (side, residual, depth)
