"""VPT-deep on CLIP (the MaPLe paper's "deep vision prompting" baseline).

Vision prompts [N_CTX_VISION, vision width] are appended to the image tokens and
replaced in vision layers 1..PROMPT_DEPTH_VISION-1; the text side is CLIP's own,
with the fixed hand-crafted prompt "<CTX_INIT> <class>." (no learned text), so class
text features are computed once.
"""
from torch import nn

from engine import TRAINER_REGISTRY
from engine.config_extension import add_node, config_extension
from models.class_prompts import FixedClassPrompts
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
    learns_vision = True

    def __init__(self, clip_model, image_encoder, classnames, opts):
        super().__init__()
        depth = vision_depth(image_encoder, opts.PROMPT_DEPTH_VISION,
                             "TRAINER.VPT.PROMPT_DEPTH_VISION", minimum=1)
        n_vision = int(opts.N_CTX_VISION)
        template = opts.CTX_INIT.replace("_", " ").strip()
        texts = [f"{template} {name}." if template else f"{name}." for name in classnames]
        print(f'Deep vision prompting: {n_vision} tokens, depth {depth}; text "{texts[0]}"')
        self.fixed_text = FixedClassPrompts(clip_model, texts)
        self.vision_ctx = nn.Parameter(random_prompts(n_vision, image_encoder.width))
        self.deep_vision_prompts = make_deep_prompts(depth - 1, n_vision, image_encoder.width)
        self.vision_slots = vision_slots(n_vision)

    @property
    def n_cls(self):
        return self.fixed_text.n_cls

    @property
    def tokenized_prompts(self):
        return self.fixed_text.tokenized_prompts

    def text_inputs(self, class_ids=None):
        embeddings, tokens = self.fixed_text(class_ids)
        return embeddings, tokens, None

    def vision_inputs(self):
        return self.vision_ctx, DeepPromptHook(self.vision_slots, list(self.deep_vision_prompts))


@TRAINER_REGISTRY.register()
class VPT(DeepPromptTrainer):
    config_node = "VPT"

    @classmethod
    def build_prompt_learner(cls, cfg, clip_model, image_encoder, classnames):
        return VPTPromptLearner(clip_model, image_encoder, classnames, cfg.TRAINER.VPT)
