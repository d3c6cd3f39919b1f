"""MODEL.TEXT_ENCODER.GRAD_CHECKPOINTING (models/encoder_options.py): the text blocks are
recomputed in the backward pass, and the prompt gradients stay what they were."""
import pytest
import torch

import trainers  # noqa: F401  (registers the trainers)
from engine import TRAINER_REGISTRY, get_cfg_default
from engine.config_extension import extend_cfg
from models import load_clip
from models.clip_loader import load_clip_from_cfg
from models.encoder_options import apply_encoder_options
from models.text_encoder import TextEncoder

CLASSNAMES = ["cat", "golden retriever", "dog", "hot air balloon", "tree frog", "car"]


def config(trainer, *opts):
    cfg = extend_cfg(get_cfg_default())
    cfg.MODEL.BACKBONE.NAME = "tiny-vit"
    cfg.merge_from_list(["TRAINER.CLASS_SAMPLING.K", 3, *opts])
    return cfg


class BlockRuns:
    """How often each text block's MLP runs (forward and recomputation alike)."""

    def __init__(self, clip_model):
        self.count = 0
        self.handles = [block.mlp.register_forward_pre_hook(self.record)
                        for block in clip_model.transformer.resblocks]

    def record(self, *args):
        self.count += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


def prompt_gradients(model, clip_model, class_ids, checkpointing):
    clip_model.transformer.grad_checkpointing = checkpointing
    model.zero_grad()
    runs = BlockRuns(clip_model)
    try:
        features = model.encode_class_prompts(class_ids)
        target = torch.randn(features.shape, generator=torch.Generator().manual_seed(3))
        (features * target).sum().backward()
    finally:
        runs.remove()
        clip_model.transformer.grad_checkpointing = False
    grads = {name: p.grad.clone() for name, p in model.prompt_learner.named_parameters()
             if p.grad is not None}
    return grads, runs.count


@pytest.mark.parametrize("trainer,opts", [
    ("POMP", ()),
    ("RPP", ("TRAINER.RPP.PROMPT_DEPTH_TEXT", 3, "TRAINER.RPP.PROMPT_DEPTH_VISION", 3)),
])
def test_checkpointing_recomputes_blocks_and_keeps_gradients(trainer, opts):
    clip_model = load_clip("tiny-vit")
    model = TRAINER_REGISTRY.get(trainer).build_prompted_model(config(trainer, *opts), clip_model, CLASSNAMES)
    class_ids = torch.tensor([4, 0, 2])  # what class sampling encodes: K of the classes
    layers = len(clip_model.transformer.resblocks)
    plain, plain_runs = prompt_gradients(model, clip_model, class_ids, checkpointing=False)
    recomputed, recomputed_runs = prompt_gradients(model, clip_model, class_ids, checkpointing=True)
    assert plain_runs == layers
    assert recomputed_runs == 2 * layers  # every block again in the backward pass
    assert plain and set(plain) == set(recomputed)
    assert sum(grad.abs().sum() > 0 for grad in plain.values()) >= len(plain) // 2
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5,
                                   atol=1e-5 * max(grad.abs().max().item(), 1e-3))


def test_config_key_sets_open_clips_switch():
    cfg = config("CoOp")
    assert cfg.MODEL.TEXT_ENCODER.GRAD_CHECKPOINTING is False
    clip_model = load_clip_from_cfg(cfg)
    assert TextEncoder(clip_model).checkpointing is False
    cfg.MODEL.TEXT_ENCODER.GRAD_CHECKPOINTING = True
    clip_model = load_clip_from_cfg(cfg)
    assert clip_model.transformer.grad_checkpointing is True
    assert TextEncoder(clip_model).checkpointing is True
    assert not clip_model.visual.transformer.grad_checkpointing  # the text tower only
    del cfg.MODEL["TEXT_ENCODER"]  # a config without the node: defaults
    assert apply_encoder_options(clip_model, cfg).transformer.grad_checkpointing is False
