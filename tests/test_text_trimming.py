"""Text trimming (models/text_encoder.py): every batch of class prompts is encoded only up
to its longest EOT position, and gives the features of the full 77-token pass.

Per trainer, the text features of the prompted model (built by the trainer's own
``build_prompted_model`` on the tiny CLIP) are computed twice: as they are, and under
``full_context()`` (all 77 tokens, what CLIP's ``encode_text`` and the official code
do). The blocks' sequence length is recorded to show that trimming happened.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO_ROOT
import trainers  # noqa: F401  (registers the trainers)
from engine import TRAINER_REGISTRY, get_cfg_default
from engine.config_extension import extend_cfg
from models import load_clip, tokenize
from models.text_encoder import TextEncoder, full_context
from models.zero_shot import ZeroShotClassifier, class_text_features

CONTEXT = 77
# Names of very different token lengths, so batches trim to different lengths.
CLASSNAMES = ["cat", "golden retriever", "dog", "a small red bicycle with a basket and bell",
              "tree frog", "car", "espresso maker", "hot air balloon over a lake"]


def trainer_config(trainer, *opts):
    cfg = extend_cfg(get_cfg_default())
    folder = "CoOp" if trainer in ("CoOp", "POMP") else trainer
    path = os.path.join(REPO_ROOT, "configs", "trainers", folder, "tiny_vit.yaml")
    if os.path.exists(path):
        cfg.merge_from_file(path)
    cfg.MODEL.BACKBONE.NAME = "tiny-vit"
    if opts:
        cfg.merge_from_list(list(opts))
    return cfg


class SequenceLengths:
    """The sequence lengths the text blocks see (their MLP input, in every block path)."""

    def __init__(self, clip_model):
        self.lengths = []
        self.handles = [block.mlp.register_forward_pre_hook(self.record)
                        for block in clip_model.transformer.resblocks]

    def record(self, module, inputs):
        self.lengths.append(inputs[0].shape[1])

    def take(self):
        lengths, self.lengths = self.lengths, []
        return lengths

    def remove(self):
        for handle in self.handles:
            handle.remove()


def longest_eot(tokens):
    return int(tokens.argmax(dim=-1).max()) + 1


def assert_fp32_close(got, expected):
    """Equal up to fp32 rounding of a different summation order (any BLAS thread count)."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * max(scale, 1.0))


def perturb_prompts(model):
    """Move every learned tensor off its initialisation, so every prompt matters."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.prompt_learner.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))


PROMPTED = {
    "CoOp-end": ("CoOp", ()),
    "CoOp-middle-random": ("CoOp", ("TRAINER.COOP.CLASS_TOKEN_POSITION", "middle",
                                    "TRAINER.COOP.CTX_INIT", "")),
    "CoOp-front-csc": ("CoOp", ("TRAINER.COOP.CLASS_TOKEN_POSITION", "front",
                                "TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.CSC", True)),
    "POMP": ("POMP", ("TRAINER.POMP.N_CTX", 4)),
    "IVLP": ("IVLP", ()),
    "VPT": ("VPT", ()),
    "MaPLe": ("MaPLe", ()),
    "PromptSRC": ("PromptSRC", ()),
    "RPP": ("RPP", ()),
    "RPP-shared-qkv": ("RPP", ("TRAINER.RPP.SHARE_QKV", True)),
    "RPP-independent-input": ("RPP", ("TRAINER.RPP.QKV_INIT", "independent",
                                      "TRAINER.RPP.RESIDUAL", "input")),
    "RPP-text-off": ("RPP", ("TRAINER.RPP.PROMPT_DEPTH_TEXT", 0)),
}


@pytest.fixture(scope="module")
def tiny_clip():
    return load_clip("tiny-vit")


@pytest.mark.parametrize("case", sorted(PROMPTED))
def test_trimmed_class_features_equal_the_full_context_ones(case, tiny_clip):
    trainer, opts = PROMPTED[case]
    cfg = trainer_config(trainer, *opts)
    model = TRAINER_REGISTRY.get(trainer).build_prompted_model(cfg, tiny_clip, CLASSNAMES)
    perturb_prompts(model)
    lengths = SequenceLengths(tiny_clip)
    tokens = model.prompt_learner.text_inputs()[1]
    try:
        for class_ids in (None, torch.tensor([0, 2, 5]), torch.tensor([3, 1])):
            expected_length = longest_eot(tokens if class_ids is None else tokens[class_ids])
            with torch.no_grad():
                trimmed = model.encode_class_prompts(class_ids)
                assert set(lengths.take()) == {expected_length}
                with full_context():
                    full = model.encode_class_prompts(class_ids)
                assert set(lengths.take()) == {CONTEXT}
            assert expected_length < CONTEXT
            assert_fp32_close(trimmed, full)
    finally:
        lengths.remove()


@pytest.mark.parametrize("case", ["CoOp-middle-random", "RPP", "MaPLe"])
def test_trimmed_prompt_gradients_equal_the_full_context_ones(case, tiny_clip):
    trainer, opts = PROMPTED[case]
    cfg = trainer_config(trainer, *opts)
    model = TRAINER_REGISTRY.get(trainer).build_prompted_model(cfg, tiny_clip, CLASSNAMES)
    perturb_prompts(model)
    target = torch.randn(3, tiny_clip.text_projection.shape[1], generator=torch.Generator().manual_seed(1))
    class_ids = torch.tensor([1, 3, 6])

    def gradients():
        model.zero_grad()
        (model.encode_class_prompts(class_ids) * target).sum().backward()
        return {name: p.grad.clone() for name, p in model.prompt_learner.named_parameters()
                if p.grad is not None}

    trimmed = gradients()
    with full_context():
        full = gradients()
    assert trimmed and set(trimmed) == set(full)
    for name in full:
        assert_fp32_close(trimmed[name], full[name])


def test_cocoop_per_image_prompts_trim_and_match(tiny_clip):
    cfg = trainer_config("CoCoOp")
    model = TRAINER_REGISTRY.get("CoCoOp").build_prompted_model(cfg, tiny_clip, CLASSNAMES)
    perturb_prompts(model)
    image_features = torch.randn(3, tiny_clip.text_projection.shape[1],
                                 generator=torch.Generator().manual_seed(2))
    lengths = SequenceLengths(tiny_clip)
    try:
        with torch.no_grad():
            trimmed = model.text_features(image_features)
            seen = set(lengths.take())
            with full_context():
                full = model.text_features(image_features)
    finally:
        lengths.remove()
    assert seen == {longest_eot(model.prompt_learner.tokenized_prompts)}
    assert trimmed.shape == (3, len(CLASSNAMES), tiny_clip.text_projection.shape[1])
    assert_fp32_close(trimmed, full)


def test_zero_shot_features_and_teacher_trim_and_match(tiny_clip):
    templates = ["a photo of a {}.", "itap of the {}, seen from far away."]
    lengths = SequenceLengths(tiny_clip)
    try:
        trimmed = class_text_features(tiny_clip, CLASSNAMES, templates)
        seen = lengths.take()
        with full_context():
            full = class_text_features(tiny_clip, CLASSNAMES, templates)
            teacher = ZeroShotClassifier(tiny_clip, CLASSNAMES, templates[:1])
        assert set(lengths.take()) == {CONTEXT}
    finally:
        lengths.remove()
    # every template x class text goes through the encoder in one list (chunks of 1000):
    # here one chunk, trimmed to its longest EOT
    every_text = [t.format(n) for t in templates for n in CLASSNAMES]
    layers = len(tiny_clip.transformer.resblocks)
    assert seen == [longest_eot(tokenize(every_text))] * layers
    assert longest_eot(tokenize(every_text)) < CONTEXT
    assert_fp32_close(trimmed, full)
    # CLIP's own encode_text on all 77 tokens: the zero-shot classifier's reference
    with torch.no_grad():
        own = F.normalize(tiny_clip.encode_text(tokenize([templates[0].format(n) for n in CLASSNAMES])), dim=-1)
    assert_fp32_close(class_text_features(tiny_clip, CLASSNAMES, templates[:1]), own)
    assert_fp32_close(teacher.text_features, own)


def test_trimming_is_off_for_a_non_causal_mask(tiny_clip):
    encoder = TextEncoder(tiny_clip)
    assert encoder.causal
    tokens = tokenize(["a cat"])
    assert encoder.encoded_length(tokens.argmax(-1), CONTEXT) == 4  # SOS a cat EOT
    encoder.causal = False  # e.g. a tower whose tokens also see later ones
    assert encoder.encoded_length(tokens.argmax(-1), CONTEXT) == CONTEXT
    with full_context():
        assert TextEncoder(tiny_clip).encoded_length(tokens.argmax(-1), CONTEXT) == CONTEXT
    assert TextEncoder.trim_to_eot  # restored on leaving
