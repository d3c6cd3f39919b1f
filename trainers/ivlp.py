"""IVLP (independent vision-language deep prompting, from the MaPLe paper).

Text prompts ``ctx`` [N_CTX_TEXT, text width] in tokens [1:1+n] of every class
prompt (first-layer ctx from the first N_CTX_TEXT tokens of CTX_INIT, the rest of
CTX_INIT kept as fixed words), replaced in text layers 1..PROMPT_DEPTH_TEXT-1; vision
prompts [N_CTX_VISION, vision width] appended to the image tokens and replaced in vision
layers 1..PROMPT_DEPTH_VISION-1. The two sides are learned independently.
"""
from torch import nn

from engine import TRAINER_REGISTRY
from models.class_prompts import AssembledPrompts, ClassPromptAssembler
from models.deep_prompts import (
    DeepPromptHook,
    check_depth,
    init_leading_context,
    make_deep_prompts,
    random_prompts,
    text_layers,
    text_slots,
    vision_slots,
)
from trainers.deep_prompt_trainer import DeepPromptTrainer, vision_depth


class IVLPPromptLearner(AssembledPrompts, nn.Module):
    learns_text = True

    def __init__(self, clip_model, image_encoder, classnames, opts, node):
        super().__init__()
        depth_text = check_depth(opts.PROMPT_DEPTH_TEXT, text_layers(clip_model),
                                 f"{node}.PROMPT_DEPTH_TEXT", minimum=1)
        depth_vision = vision_depth(image_encoder, opts.PROMPT_DEPTH_VISION,
                                    f"{node}.PROMPT_DEPTH_VISION")
        n_text, n_vision = int(opts.N_CTX_TEXT), int(opts.N_CTX_VISION)
        vectors, prompt_prefix = init_leading_context(clip_model, n_text, opts.CTX_INIT)
        print(f'Independent V-L design. Initial text context: "{prompt_prefix}"')
        print(f"Text prompts: {n_text} tokens, depth {depth_text}; "
              f"vision prompts: {n_vision if depth_vision else 0} tokens, depth {depth_vision}")
        self.ctx = nn.Parameter(vectors)
        self.deep_text_prompts = make_deep_prompts(depth_text - 1, n_text, vectors.shape[1])
        self.assembler = ClassPromptAssembler(clip_model, classnames, prompt_prefix, n_text)
        self.text_slots = text_slots(n_text)
        self.learns_vision = depth_vision > 0
        if depth_vision:
            self.vision_ctx = nn.Parameter(random_prompts(n_vision, image_encoder.width))
            self.deep_vision_prompts = make_deep_prompts(depth_vision - 1, n_vision, image_encoder.width)
            self.vision_slots = vision_slots(n_vision)
        else:
            self.vision_ctx = None

    def text_inputs(self, class_ids=None):
        hook = DeepPromptHook(self.text_slots, list(self.deep_text_prompts))
        return self.assembler.text_inputs(self.ctx, class_ids, hook)

    def vision_inputs(self):
        if self.vision_ctx is None:
            return None, None
        return self.vision_ctx, DeepPromptHook(self.vision_slots, list(self.deep_vision_prompts))


@TRAINER_REGISTRY.register()
class IVLP(DeepPromptTrainer):
    config_node = "IVLP"
    config_keys = {
        "N_CTX_VISION": 2,  # number of vision prompt tokens
        "N_CTX_TEXT": 2,  # number of text prompt tokens
        "CTX_INIT": "a photo of a",  # text initialisation; its first N_CTX_TEXT tokens are learned
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
        "PROMPT_DEPTH_VISION": 9,  # layers with vision prompts (0: none)
        "PROMPT_DEPTH_TEXT": 9,  # layers with text prompts (>= 1)
    }

    @classmethod
    def build_prompt_learner(cls, cfg, clip_model, image_encoder, classnames):
        return IVLPPromptLearner(clip_model, image_encoder, classnames, cls.options(cfg),
                                 cls.config_path())
