"""VPT-deep on CLIP (the MaPLe paper's "deep vision prompting" baseline).

Vision prompts [N_CTX_VISION, vision width] are appended to the image tokens and
replaced in vision layers 1..PROMPT_DEPTH_VISION-1; the text side is CLIP's own,
with the fixed hand-crafted prompt "<CTX_INIT> <class>." (no learned text), so class
text features are computed once.
"""
from torch import nn

from engine import TRAINER_REGISTRY
from models.class_prompts import FixedClassPrompts
from models.deep_prompts import DeepPromptHook, make_deep_prompts, random_prompts, vision_slots
from trainers.deep_prompt_trainer import DeepPromptTrainer, vision_depth


class VPTPromptLearner(nn.Module):
    learns_text = False
    learns_vision = True

    def __init__(self, clip_model, image_encoder, classnames, opts, node):
        super().__init__()
        depth = vision_depth(image_encoder, opts.PROMPT_DEPTH_VISION,
                             f"{node}.PROMPT_DEPTH_VISION", minimum=1)
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

    def text_inputs(self, class_ids=None):
        return self.fixed_text.text_inputs(class_ids)

    def vision_inputs(self):
        return self.vision_ctx, DeepPromptHook(self.vision_slots, list(self.deep_vision_prompts))


@TRAINER_REGISTRY.register()
class VPT(DeepPromptTrainer):
    config_node = "VPT"
    config_keys = {
        "N_CTX_VISION": 2,  # number of vision prompt tokens
        "CTX_INIT": "a photo of a",  # fixed text template in front of the class name
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
        "PROMPT_DEPTH_VISION": 1,  # layers with vision prompts (>= 1)
    }

    @classmethod
    def build_prompt_learner(cls, cfg, clip_model, image_encoder, classnames):
        return VPTPromptLearner(clip_model, image_encoder, classnames, cls.options(cfg),
                                cls.config_path())
