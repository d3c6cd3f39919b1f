"""CoCoOp (Zhou et al., CVPR 2022): CoOp's generic context plus a per-image shift.

A small meta-net maps each image's unit-norm CLIP feature (normalised first, as in the
published code) to one vector that is added to every context token, so every image
gets its own set of class prompts. Unlike the reference implementation, which runs the
text encoder once per image in a Python loop, all images' prompts go through the text
encoder together as one [B * n_cls, L, D] batch (split into chunks of at most
``max_text_sequences`` sequences to bound memory).

Only the prompt learner (``ctx`` and ``meta_net``) is trained and checkpointed; its
state-dict keys match the reference checkpoints (``ctx``, ``meta_net.linear1.*``,
``meta_net.linear2.*``).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.user_errors import UserError
from models.class_prompts import AssembledPrompts, ClassPromptAssembler
from models.prompt_init import init_context
from models.prompted_clip import CLIPOutputs, PromptedCLIP
from trainers.prompt_trainer import PromptTrainer

# Sequences per text-encoder call; a batch of images is split into groups of whole
# images so that one group holds at most this many (one image's classes always fit).
MAX_TEXT_SEQUENCES = 4096


def image_feature_dim(clip_model):
    """Width of CLIP's image features (the joint embedding dim), read from the model."""
    width = getattr(clip_model.visual, "output_dim", None)
    if width:
        return int(width)
    projection = clip_model.text_projection  # image and text features share the embed dim
    if isinstance(projection, nn.Linear):
        return projection.out_features
    return projection.shape[1]


def build_meta_net(vis_dim, ctx_dim):
    """Linear(vis_dim, vis_dim // 16) -> ReLU -> Linear(vis_dim // 16, ctx_dim)."""
    hidden = max(vis_dim // 16, 1)
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(vis_dim, hidden)),
        ("relu", nn.ReLU(inplace=True)),
        ("linear2", nn.Linear(hidden, ctx_dim)),
    ]))


class CoCoOpPromptLearner(AssembledPrompts, nn.Module):
    """Generic context ``ctx`` [n_ctx, D] + ``meta_net``; prompts conditioned on images."""

    learns_text = True
    learns_vision = False

    def __init__(self, clip_model, classnames, n_ctx, ctx_init):
        super().__init__()
        vectors, prompt_prefix = init_context(clip_model, n_ctx, ctx_init)
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {vectors.shape[0]}")
        self.ctx = nn.Parameter(vectors)
        ctx_dim = vectors.shape[-1]
        self.meta_net = build_meta_net(image_feature_dim(clip_model), ctx_dim)
        self.assembler = ClassPromptAssembler(
            clip_model, classnames, prompt_prefix, vectors.shape[0], "end"
        )

    def conditioned_context(self, image_features):
        """Per-image context [B, n_ctx, D] = ctx + meta_net(image feature) on every token."""
        bias = self.meta_net(image_features.to(self.ctx.dtype))
        return self.ctx.unsqueeze(0) + bias.unsqueeze(1)

    def forward(self, image_features):
        """Prompt embeddings [B * n_cls, L, D] (image-major) for image features [B, E]."""
        return self.assembler.per_image(self.conditioned_context(image_features))


class ConditionedCLIP(PromptedCLIP):
    """Frozen CLIP + CoCoOp prompts: logits[b, c] = scale * cos(image_b, prompt_{b,c})."""

    def __init__(self, clip_model, prompt_learner, max_text_sequences=MAX_TEXT_SEQUENCES):
        super().__init__(clip_model, prompt_learner)
        self.max_text_sequences = max_text_sequences

    def text_features(self, image_features):
        """Normalised class features [B, n_cls, E], one set per image (never cached), for
        unit-norm image features [B, E]."""
        learner = self.prompt_learner
        n_cls = learner.n_cls
        images_per_call = max(1, self.max_text_sequences // n_cls)
        chunks = []
        for start in range(0, image_features.shape[0], images_per_call):
            group = image_features[start:start + images_per_call]
            prompts = learner(group)
            tokenized = learner.tokenized_prompts.repeat(group.shape[0], 1)
            features = self.text_encoder(prompts, tokenized)
            chunks.append(features.float().reshape(group.shape[0], n_cls, -1))
        return F.normalize(torch.cat(chunks), dim=-1)

    def forward(self, image, return_features=False):
        # The published order: the meta-net sees the unit-norm feature the logits use (raw
        # CLIP features have norms of ~10, a different meta-net input scale).
        image_features = F.normalize(self.image_encoder(image).float(), dim=-1)
        text_features = self.text_features(image_features)
        logits = torch.einsum("be,bce->bc", image_features, text_features)
        logits = self.logit_scale.exp().float() * logits
        return CLIPOutputs(logits, image_features, text_features) if return_features else logits


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    config_node = "COCOOP"
    config_keys = {
        "N_CTX": 16,  # number of context vectors
        "CTX_INIT": "",  # initialisation words, e.g. "a photo of a"
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
    }

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if int(cfg.TRAINER.CLASS_SAMPLING.K) > 0:
            raise UserError("CoCoOp conditions every class prompt on the image, so it cannot "
                            "encode sampled classes; set TRAINER.CLASS_SAMPLING.K 0")

    @classmethod
    def build_prompted_model(cls, cfg, clip_model, classnames):
        opts = cls.options(cfg)
        prompt_learner = CoCoOpPromptLearner(clip_model, classnames, opts.N_CTX, opts.CTX_INIT)
        return ConditionedCLIP(clip_model, prompt_learner)
