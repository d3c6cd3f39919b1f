"""VPT-deep on CLIP (the MaPLe paper's "deep vision prompting" baseline).

Vision prompts [N_CTX_VISION, vision width] are appended to the image tokens and
replaced in vision layers 1..PROMPT_DEPTH_VISION-1; the text side is CLIP's own,
with the fixed hand-crafted prompt "<CTX_INIT> <class>." (no learned text), so class
text features are computed once.
"""
import torch
from torch import nn

from engine import TRAINER_REGISTRY
from engine.config_extension import add_node, config_extension
from models.clip_loader import tokenize
from models.deep_prompts import DeepPromptHook, make_deep_prompts, random_prompts, vision_slots
from trainers.ivlp import DeepPromptTrainer, vision_depth


@config_extension
def add_vpt_keys(cfg):
    add_node(cfg, "TRAINER.VPT", {
        "N_CTX_VISION": 2,  # number of vision prompt tokens
        "CTX_INIT": "a photo of a",  # fixed text template in front of the class name
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
        "PROMPT_DEPTH_VISION": 1,  # layers with vision prompts (>= 1)
    })


class VPTPromptLearner(nn.Module):
    learns_text = False

    def __init__(self, clip_model, image_encoder, classnames, opts):
        super().__init__()
        depth = vision_depth(image_encoder, opts.PROMPT_DEPTH_VISION,
                             "TRAINER.VPT.PROMPT_DEPTH_VISION", minimum=1)
        n_vision = int(opts.N_CTX_VISION)
        template = opts.CTX_INIT.replace("_", " ").strip()
        texts = [f"{template} {name}." if template else f"{name}." for name in classnames]
        print(f'Deep vision prompting: {n_vision} tokens, depth {depth}; text "{texts[0]}"')
        tokenized = tokenize(texts).to(clip_model.token_embedding.weight.device)
        with torch.no_grad():
            embeddings = clip_model.token_embedding(tokenized).float()
        # Frozen text input: non-persistent, so checkpoints hold only the vision prompts.
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)
        self.register_buffer("text_embeddings", embeddings, persistent=False)
        self.vision_ctx = nn.Parameter(random_prompts(n_vision, image_encoder.width))
        self.deep_vision_prompts = make_deep_prompts(depth - 1, n_vision, image_encoder.width)
        self.vision_slots = vision_slots(n_vision)

    def text_inputs(self):
        return self.text_embeddings, self.tokenized_prompts, None

    def vision_inputs(self):
        return self.vision_ctx, DeepPromptHook(self.vision_slots, list(self.deep_vision_prompts))


@TRAINER_REGISTRY.register()
class VPT(DeepPromptTrainer):
    config_node = "VPT"

    def build_prompt_learner(self, clip_model, image_encoder):
        return VPTPromptLearner(clip_model, image_encoder, self.classnames, self.cfg.TRAINER.VPT)
