"""IVLP, VPT and MaPLe on the tiny CLIP and the demo dataset."""
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from engine import build_trainer
from models.clip_loader import tokenize
from models.deep_prompts import PromptDepthError
from models.prompt_init import word_embeddings
from models.vision_encoder import VisionPromptsUnsupported

from conftest import REPO_ROOT

CONFIGS = {name: os.path.join(REPO_ROOT, "configs", "trainers", name, "tiny_vit.yaml")
           for name in ("IVLP", "VPT", "MaPLe")}

# tiny-vit: text width 32, vision width 48, 3 layers; tiny configs use depth 3.
EXPECTED_TRAINABLE = {
    "IVLP": {
        "ctx": (2, 32),
        "deep_text_prompts.0": (2, 32),
        "deep_text_prompts.1": (2, 32),
        "vision_ctx": (2, 48),
        "deep_vision_prompts.0": (2, 48),
        "deep_vision_prompts.1": (2, 48),
    },
    "VPT": {
        "vision_ctx": (4, 48),
        "deep_vision_prompts.0": (4, 48),
        "deep_vision_prompts.1": (4, 48),
    },
    "MaPLe": {
        "ctx": (2, 32),
        "proj.weight": (48, 32),
        "proj.bias": (48,),
        "compound_prompts_text.0": (2, 32),
        "compound_prompts_text.1": (2, 32),
        "compound_prompt_projections.0.weight": (48, 32),
        "compound_prompt_projections.0.bias": (48,),
        "compound_prompt_projections.1.weight": (48, 32),
        "compound_prompt_projections.1.bias": (48,),
    },
}

TRAINERS = sorted(EXPECTED_TRAINABLE)


def build(make_cfg, name, *opts, **kwargs):
    return build_trainer(make_cfg(name, "DATASET.NUM_SHOTS", 2, *opts, config_file=CONFIGS[name], **kwargs))


def frozen_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()
            if not k.startswith("prompt_learner.")}


def prompt_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.prompt_learner.state_dict().items()}


def fixed_batch(trainer):
    batch = next(iter(trainer.train_loader_x))
    return {"img": batch["img"][:16], "label": batch["label"][:16]}


def batch_loss(trainer, batch):
    trainer.clear_text_feature_cache()  # evaluation caches text features; prompts changed since
    with torch.no_grad(), trainer.autocast():
        return F.cross_entropy(trainer.model(batch["img"]).float(), batch["label"]).item()


def sgd_steps(trainer, batch, steps):
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = 10 ** 6, 0  # no LR step inside the loop
    for _ in range(steps):
        summary = trainer.forward_backward(batch)
        assert torch.isfinite(torch.tensor(summary["loss"]))
    trainer.set_model_mode("eval")


@pytest.mark.parametrize("name", TRAINERS)
def test_only_prompt_parameters_train_and_are_registered(make_cfg, name):
    trainer = build(make_cfg, name)
    trainable = {n: tuple(p.shape) for n, p in trainer.model.named_parameters() if p.requires_grad}
    expected = {f"prompt_learner.{k}": v for k, v in EXPECTED_TRAINABLE[name].items()}
    assert trainable == expected
    assert trainer.get_model_names() == ["prompt_learner"]
    state = trainer.model.prompt_learner.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == EXPECTED_TRAINABLE[name]


@pytest.mark.parametrize("name", TRAINERS)
def test_sgd_steps_lower_the_loss_and_touch_only_prompts(make_cfg, name):
    trainer = build(make_cfg, name, "OPTIM.LR", 0.002, "OPTIM.WARMUP_EPOCH", 0)
    batch = fixed_batch(trainer)
    trainer.set_model_mode("eval")
    frozen_before, prompts_before = frozen_state(trainer), prompt_state(trainer)
    loss_before = batch_loss(trainer, batch)
    sgd_steps(trainer, batch, 5)
    loss_after = batch_loss(trainer, batch)
    assert loss_after < loss_before
    frozen_after, prompts_after = frozen_state(trainer), prompt_state(trainer)
    assert frozen_after.keys() == frozen_before.keys()
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    changed = {k for k in prompts_before if not torch.equal(prompts_before[k], prompts_after[k])}
    assert changed == set(EXPECTED_TRAINABLE[name]), "every prompt parameter gets a gradient"


@pytest.mark.parametrize("name", TRAINERS)
def test_checkpoint_holds_prompts_only_and_round_trips(make_cfg, tmp_path, name):
    out = str(tmp_path / "ckpt")
    trainer = build(make_cfg, name, "OPTIM.LR", 0.005, "OPTIM.WARMUP_EPOCH", 0)
    sgd_steps(trainer, fixed_batch(trainer), 1)
    trainer.save_model(0, out)
    saved = torch.load(os.path.join(out, "prompt_learner", "model.pth.tar-1"), weights_only=True)
    assert set(saved["state_dict"]) == set(EXPECTED_TRAINABLE[name])
    fresh = build(make_cfg, name)
    assert not all(torch.equal(a, b) for a, b in
                   zip(prompt_state(fresh).values(), prompt_state(trainer).values()))
    fresh.load_model(out, epoch=1)
    for key, value in prompt_state(trainer).items():
        assert torch.equal(prompt_state(fresh)[key], value), key
    image = fixed_batch(trainer)["img"][:4]
    trainer.set_model_mode("eval")
    fresh.set_model_mode("eval")
    with torch.no_grad():
        assert torch.equal(trainer.model_inference(image), fresh.model_inference(image))


@pytest.mark.parametrize("name", ["CoOp", *TRAINERS])
def test_text_features_are_cached_per_test_run_or_per_run_when_fixed(make_cfg, monkeypatch, restore_stdout, name):
    config = os.path.join(REPO_ROOT, "configs", "trainers", name, "tiny_vit.yaml")
    trainer = build_trainer(make_cfg(name, "DATASET.NUM_SHOTS", 2, "DATALOADER.TEST.BATCH_SIZE", 7,
                                     config_file=config))
    calls = []
    original = trainer.model.text_encoder.forward

    def counting_forward(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer.model.text_encoder, "forward", counting_forward)
    trainer.test()
    assert len(trainer.test_loader) > 1
    assert len(calls) == 1
    trainer.test()
    if trainer.model.prompt_learner.learns_text:
        assert len(calls) == 2, "a new test run recomputes (prompts may have changed)"
    else:  # VPT's hand-crafted class text never changes: encoded once per run
        assert len(calls) == 1


def test_maple_learns_the_first_two_words_and_keeps_the_rest_fixed(make_cfg):
    trainer = build(make_cfg, "MaPLe", "TRAINER.MAPLE.N_CTX", 2, "TRAINER.MAPLE.CTX_INIT", "a photo of a")
    learner = trainer.model.prompt_learner
    clip_words = word_embeddings_of(trainer, "a photo of a")
    assert torch.equal(learner.ctx.detach(), clip_words[:2])
    classname = trainer.classnames[0]
    expected_tokens = tokenize([f"a photo of a {classname}."])[0]
    assert torch.equal(learner.tokenized_prompts[0].cpu(), expected_tokens)
    with torch.no_grad():
        prompts = learner.assembler(learner.ctx)
    torch.testing.assert_close(prompts[0, 1:3], clip_words[:2])  # learned slots
    torch.testing.assert_close(prompts[0, 3:5], clip_words[2:4])  # "of a": fixed tokens
    # the fixed part is a frozen buffer, not a parameter
    assert "of a" not in " ".join(n for n, _ in learner.named_parameters())
    assert learner.proj.weight.shape == (48, 32)  # text width 32 -> vision width 48


def word_embeddings_of(trainer, text):
    # word_embeddings only needs CLIP's token embedding, which the text encoder shares
    return word_embeddings(SimpleNamespace(token_embedding=trainer.model.text_encoder.token_embedding), text)


@pytest.mark.parametrize("prec", ["fp32", "bf16"])
def test_maple_runs_in_fp32_and_bf16(make_cfg, prec):
    trainer = build(make_cfg, "MaPLe", "TRAINER.MAPLE.PREC", prec, "OPTIM.LR", 0.005,
                    "OPTIM.WARMUP_EPOCH", 0)
    batch = fixed_batch(trainer)
    before = prompt_state(trainer)
    sgd_steps(trainer, batch, 2)
    after = prompt_state(trainer)
    assert all(v.dtype == torch.float32 for v in after.values()), "parameters stay fp32"
    assert not torch.equal(before["ctx"], after["ctx"])
    assert not torch.equal(before["compound_prompts_text.1"], after["compound_prompts_text.1"])
    with torch.no_grad():
        logits = trainer.model_inference(batch["img"])
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_vpt_uses_the_plain_hand_crafted_text(make_cfg):
    trainer = build(make_cfg, "VPT")
    clip_text = trainer.model.text_encoder
    texts = [f"a photo of a {name}." for name in trainer.classnames]
    with torch.no_grad():
        expected = F.normalize(clip_text.encode_texts(texts).float(), dim=-1)
        got = trainer.model.text_features()
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name,opts", [
    ("MaPLe", ("TRAINER.MAPLE.PROMPT_DEPTH", 4)),
    ("IVLP", ("TRAINER.IVLP.PROMPT_DEPTH_TEXT", 4)),
    ("IVLP", ("TRAINER.IVLP.PROMPT_DEPTH_VISION", 7)),
    ("VPT", ("TRAINER.VPT.PROMPT_DEPTH_VISION", 4)),
])
def test_depth_beyond_the_layers_is_a_clear_error(make_cfg, name, opts):
    with pytest.raises(PromptDepthError, match=rf"{opts[0]} is {opts[1]} .* only 3 layers"):
        build(make_cfg, name, *opts)


def test_ivlp_without_vision_prompts_runs_on_resnet_and_vpt_refuses_it(make_cfg):
    trainer = build(make_cfg, "IVLP", "MODEL.BACKBONE.NAME", "tiny-rn",
                    "TRAINER.IVLP.PROMPT_DEPTH_VISION", 0)
    assert not any(n.startswith("prompt_learner.vision") for n, _ in trainer.model.named_parameters())
    with torch.no_grad():
        assert trainer.model_inference(fixed_batch(trainer)["img"][:2]).shape[0] == 2
    with pytest.raises(VisionPromptsUnsupported, match="tiny-rn"):
        build(make_cfg, "VPT", "MODEL.BACKBONE.NAME", "tiny-rn")
