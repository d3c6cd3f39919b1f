"""MaPLe (Khattak et al., CVPR 2023): multi-modal prompts, vision coupled to text.

Text: ``ctx`` [N_CTX, text width] from the first N_CTX tokens of CTX_INIT (the rest of
CTX_INIT stays as fixed words of the prompt), in tokens [1:1+N_CTX]; deeper text prompts
replace them in text layers 1..PROMPT_DEPTH-1. Vision: every vision prompt is a linear
projection (text width -> vision width) of the text prompt of the same depth, appended to
the image tokens (layer 0) and replacing them in vision layers 1..PROMPT_DEPTH-1.
Trained: ctx, the deeper text prompts and the projections; nothing of CLIP.
"""
import copy

from torch import nn

from engine import TRAINER_REGISTRY
from models.class_prompts import AssembledPrompts, ClassPromptAssembler
from models.deep_prompts import (
    DeepPromptHook,
    check_depth,
    init_leading_context,
    make_deep_prompts,
    text_layers,
    text_slots,
    vision_slots,
)
from trainers.deep_prompt_trainer import DeepPromptTrainer, vision_depth


class MultiModalPromptLearner(AssembledPrompts, nn.Module):
    learns_text = True
    learns_vision = True

    def __init__(self, clip_model, image_encoder, classnames, opts, node):
        super().__init__()
        key = f"{node}.PROMPT_DEPTH"
        depth = check_depth(opts.PROMPT_DEPTH, text_layers(clip_model), key, minimum=1)
        vision_depth(image_encoder, depth, key, minimum=1)
        n_ctx = int(opts.N_CTX)
        vectors, prompt_prefix = init_leading_context(clip_model, n_ctx, opts.CTX_INIT)
        text_width, vision_width = vectors.shape[1], image_encoder.width
        print(f'MaPLe design: multi-modal prompt learning. Initial context: "{prompt_prefix}"')
        print(f"Number of MaPLe context words (tokens): {n_ctx}, prompt depth {depth}")
        self.ctx = nn.Parameter(vectors)
        self.proj = nn.Linear(text_width, vision_width)
        self.compound_prompts_text = make_deep_prompts(depth - 1, n_ctx, text_width)
        self.compound_prompt_projections = nn.ModuleList(
            [copy.deepcopy(self.proj) for _ in range(depth - 1)]
        )
        self.assembler = ClassPromptAssembler(clip_model, classnames, prompt_prefix, n_ctx)
        self.text_slots = text_slots(n_ctx)
        self.vision_slots = vision_slots(n_ctx)

    def text_inputs(self, class_ids=None):
        hook = DeepPromptHook(self.text_slots, list(self.compound_prompts_text))
        return self.assembler.text_inputs(self.ctx, class_ids, hook)

    def vision_inputs(self):
        deeper = [project(prompt) for project, prompt
                  in zip(self.compound_prompt_projections, self.compound_prompts_text)]
        return self.proj(self.ctx), DeepPromptHook(self.vision_slots, deeper)


@TRAINER_REGISTRY.register()
class MaPLe(DeepPromptTrainer):
    config_node = "MAPLE"
    config_keys = {
        "N_CTX": 2,  # number of prompt tokens per layer (both sides)
        "CTX_INIT": "a photo of a",  # its first N_CTX tokens initialise the first-layer text ctx
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
        "PROMPT_DEPTH": 9,  # layers with prompts, both sides (>= 1)
    }

    @classmethod
    def build_prompt_learner(cls, cfg, clip_model, image_encoder, classnames):
        return MultiModalPromptLearner(clip_model, image_encoder, classnames, cls.options(cfg),
                                       cls.config_path())
