"""CoCoOp on the tiny CLIP: parameters, training, batched conditioning, checkpoints."""
import os

import pytest
import torch

from conftest import REPO_ROOT
from engine import build_trainer, get_cfg_default
from engine.config_extension import extend_cfg
from engine.bundled.utils.checkpoint import CheckpointMismatch
from trainers.cocoop import build_meta_net, image_feature_dim

TINY_COCOOP_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "CoCoOp", "tiny_vit.yaml")
PROMPT_KEYS = ["ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
               "meta_net.linear2.weight", "meta_net.linear2.bias"]


@pytest.fixture
def make_cocoop(make_cfg):
    def build(*opts, output_dir=None):
        cfg = make_cfg("CoCoOp", "DATASET.NUM_SHOTS", 2, *opts,
                       config_file=TINY_COCOOP_CONFIG, output_dir=output_dir)
        return build_trainer(cfg)
    return build


def unit(features):
    return features / features.norm(dim=-1, keepdim=True)


def live_meta_net(trainer, images, seed=0):
    """Random meta-net weights fitted to ``images`` so the per-image shift matters: every
    hidden unit is active (ReLU in its linear range) for each image, and the shift, a few
    context tokens in size, moves with the image (the published order's unit features)."""
    model = trainer.model
    net = model.prompt_learner.meta_net
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        features = unit(model.image_encoder(images).float())
        centre = features.mean(0)
        weight1 = torch.randn(net.linear1.weight.shape, generator=generator)
        hidden = (features - centre) @ weight1.t()  # [B, hidden]
        weight1 = weight1 / hidden.std(0, keepdim=True).t()  # each hidden unit varies by ~1
        margin = ((features - centre) @ weight1.t()).abs().max(0).values + 1.0
        net.linear1.weight.copy_(weight1)
        net.linear1.bias.copy_(margin - weight1 @ centre)
        token_size = model.prompt_learner.ctx.norm(dim=-1).mean()
        weight2 = torch.randn(net.linear2.weight.shape, generator=generator)
        net.linear2.weight.copy_(weight2 * 3 * token_size / weight2.norm(dim=0).mean())
        net.linear2.bias.copy_(torch.randn(net.linear2.bias.shape, generator=generator) * 0.01)


def test_config_keys_and_defaults():
    cfg = extend_cfg(get_cfg_default())
    assert dict(cfg.TRAINER.COCOOP) == {"N_CTX": 16, "CTX_INIT": "", "PREC": "fp16"}


def test_image_feature_dim_is_the_clip_embed_dim():
    from models.clip_loader import load_clip

    clip_model = load_clip("tiny-rn")  # ResNet tower: 256 features pooled to embed dim 32
    assert image_feature_dim(clip_model) == clip_model.text_projection.shape[1] == 40


def test_meta_net_widths_come_from_the_model():
    net = build_meta_net(512, 768)  # e.g. ViT-L/14: image features 768, text width 768
    assert net.linear1.weight.shape == (32, 512) and net.linear2.weight.shape == (768, 32)
    assert build_meta_net(8, 4).linear1.out_features == 1  # never zero-width


def test_only_ctx_and_meta_net_are_trainable_and_registered(make_cocoop, restore_stdout):
    trainer = make_cocoop()
    trainable = {n: tuple(p.shape) for n, p in trainer.model.named_parameters() if p.requires_grad}
    image = next(iter(trainer.test_loader))["img"][:1]
    with torch.no_grad():
        vis_dim = trainer.model.image_encoder(image).shape[-1]  # the CLIP embed dim
    width = trainer.model.text_encoder.token_embedding.weight.shape[1]
    hidden = vis_dim // 16
    assert trainable == {
        "prompt_learner.ctx": (4, width),  # "a photo of a" = 4 tokens
        "prompt_learner.meta_net.linear1.weight": (hidden, vis_dim),
        "prompt_learner.meta_net.linear1.bias": (hidden,),
        "prompt_learner.meta_net.linear2.weight": (width, hidden),
        "prompt_learner.meta_net.linear2.bias": (width,),
    }
    n_params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert n_params == 4 * width + hidden * vis_dim + hidden + width * hidden + width
    assert trainer.get_model_names() == ["prompt_learner"]
    assert list(trainer.model.prompt_learner.state_dict()) == PROMPT_KEYS


def test_random_init_uses_n_ctx(make_cocoop, restore_stdout):
    trainer = make_cocoop("TRAINER.COCOOP.CTX_INIT", "", "TRAINER.COCOOP.N_CTX", 8)
    assert trainer.model.prompt_learner.ctx.shape[0] == 8


def test_training_steps_lower_the_loss_and_change_only_the_prompt(make_cocoop, restore_stdout):
    trainer = make_cocoop("DATALOADER.TRAIN_X.BATCH_SIZE", 4)
    batch = next(iter(trainer.train_loader_x))
    for group in trainer.optim.param_groups:
        group["lr"] = 0.05
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.batch_idx, trainer.num_batches = 0, 1000  # no LR step inside the loop
    losses = [trainer.forward_backward(batch)["loss"] for _ in range(5)]
    assert losses[-1] < losses[0], losses
    for name, param in trainer.model.named_parameters():
        changed = not torch.equal(param.detach(), before[name])
        assert changed == name.startswith("prompt_learner."), name


def per_image_reference_logits(model, images, meta_net_inputs):
    """CoCoOp as published: for each image, context + meta_net(that image's meta-net
    input), one text-encoder call, logits from the unit-norm image feature."""
    learner = model.prompt_learner
    rows = []
    for image, meta_net_input in zip(images, meta_net_inputs):
        image_feature = unit(model.image_encoder(image.unsqueeze(0)).float())
        ctx = learner.ctx + learner.meta_net(meta_net_input.unsqueeze(0))  # [n_ctx, D]
        prompts = learner.assembler(ctx)
        text = unit(model.text_encoder(prompts, learner.tokenized_prompts).float())
        rows.append(model.logit_scale.exp().float() * image_feature @ text.t())
    return torch.cat(rows)


def test_the_live_meta_net_shifts_each_image_differently(make_cocoop, restore_stdout):
    trainer = make_cocoop()
    images = next(iter(trainer.test_loader))["img"][:5]
    live_meta_net(trainer, images)
    model = trainer.model.eval()
    net = model.prompt_learner.meta_net
    with torch.no_grad():
        features = unit(model.image_encoder(images).float())
        assert (net.linear1(features) > 0).all(), "every hidden unit live for every image"
        shifts = net(features)
    token_size = model.prompt_learner.ctx.norm(dim=-1).mean()
    distances = torch.cdist(shifts, shifts) + torch.eye(5) * 1e9
    assert distances.min() > token_size / 4, "each image gets its own shift"


@pytest.mark.parametrize("max_text_sequences", [4096, 10, 25])
def test_each_image_s_prompts_carry_its_own_shift(make_cocoop, restore_stdout, monkeypatch,
                                                  max_text_sequences):
    trainer = make_cocoop()
    images = next(iter(trainer.test_loader))["img"][:5]
    live_meta_net(trainer, images)
    model = trainer.model.eval()
    learner = model.prompt_learner
    n_cls, n_ctx = learner.n_cls, learner.ctx.shape[0]
    model.max_text_sequences = max_text_sequences * n_cls // 10  # 1, 2 or all images per call
    prompts_seen = []
    original = model.text_encoder.forward

    def recording_forward(prompts, tokenized, *args, **kwargs):
        prompts_seen.append(prompts)
        return original(prompts, tokenized, *args, **kwargs)

    monkeypatch.setattr(model.text_encoder, "forward", recording_forward)
    with torch.no_grad():
        trainer.model_inference(images)
        shifts = learner.meta_net(unit(model.image_encoder(images).float()))  # [5, D]
    contexts = torch.cat(prompts_seen).reshape(5, n_cls, -1, shifts.shape[-1])[:, :, 1:1 + n_ctx]
    expected = (learner.ctx.detach() + shifts[:, None, :])[:, None].expand_as(contexts)
    torch.testing.assert_close(contexts, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_text_sequences", [4096, 10, 25])
def test_batched_conditioning_equals_the_published_per_image_loop(make_cocoop, restore_stdout,
                                                                   max_text_sequences):
    trainer = make_cocoop()
    images = next(iter(trainer.test_loader))["img"][:5]
    live_meta_net(trainer, images)
    model = trainer.model.eval()
    n_cls = len(trainer.classnames)
    model.max_text_sequences = max_text_sequences * n_cls // 10  # 1, 2 or all images per call
    with torch.no_grad():
        raw = model.image_encoder(images).float()
        expected = per_image_reference_logits(model, images, unit(raw))  # normalise first
        got = trainer.model_inference(images)
        # What the comparison can tell apart: the meta-net fed raw features, or a
        # neighbour's shift, moves the logits far beyond the tolerance.
        raw_order = per_image_reference_logits(model, images, raw)
        mispaired = per_image_reference_logits(model, images, unit(raw).roll(1, 0))
    assert got.shape == (5, n_cls)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for wrong in (raw_order, mispaired):
        assert (wrong - expected).abs().max() > 1e-2 * expected.abs().max()
    assert not torch.allclose(got[0], got[1]), "different images, different class prompts"


def test_text_encoder_runs_once_per_chunk(make_cocoop, restore_stdout, monkeypatch):
    trainer = make_cocoop()
    calls = []
    original = trainer.model.text_encoder.forward

    def counting_forward(prompts, tokenized, *args, **kwargs):
        calls.append(prompts.shape[0])
        return original(prompts, tokenized, *args, **kwargs)

    monkeypatch.setattr(trainer.model.text_encoder, "forward", counting_forward)
    images = next(iter(trainer.test_loader))["img"][:5]
    n_cls = len(trainer.classnames)
    with torch.no_grad():
        trainer.model_inference(images)
        assert calls == [5 * n_cls]
        calls.clear()
        trainer.model.max_text_sequences = 2 * n_cls + n_cls // 2  # two whole images per call
        trainer.model_inference(images)
        assert calls == [2 * n_cls, 2 * n_cls, n_cls]


def test_bf16_autocast_runs(make_cocoop, restore_stdout):
    trainer = make_cocoop("TRAINER.COCOOP.PREC", "bf16")
    images = next(iter(trainer.test_loader))["img"][:3]
    with torch.no_grad():
        logits = trainer.model_inference(images)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_prompt_only_checkpoint_round_trip(make_cocoop, tmp_path, restore_stdout):
    out = str(tmp_path / "run")
    trained = make_cocoop(output_dir=out)
    live_meta_net(trained, next(iter(trained.test_loader))["img"][:5], seed=1)
    with torch.no_grad():
        trained.model.prompt_learner.ctx.add_(0.1)
    trained.save_model(0, out)
    checkpoint = torch.load(os.path.join(out, "prompt_learner", "model.pth.tar-1"),
                            weights_only=True)
    assert list(checkpoint["state_dict"]) == PROMPT_KEYS, "no frozen CLIP weights"

    fresh = make_cocoop()
    fresh.load_model(out, epoch=1)
    for key, value in trained.model.prompt_learner.state_dict().items():
        assert torch.equal(fresh.model.prompt_learner.state_dict()[key], value), key
    images = next(iter(fresh.test_loader))["img"][:4]
    with torch.no_grad():
        torch.testing.assert_close(fresh.model_inference(images), trained.model_inference(images))

    other = make_cocoop("TRAINER.COCOOP.CTX_INIT", "", "TRAINER.COCOOP.N_CTX", 8)
    with pytest.raises(CheckpointMismatch, match=r"ctx: file \(4, 32\) vs model \(8, 32\)"):
        other.load_model(out, epoch=1)
