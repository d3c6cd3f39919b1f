"""CoOp (Zhou et al., IJCV 2022): learned context vectors in front of each class name."""
import torch.nn as nn

from engine import TRAINER_REGISTRY
from models.class_prompts import AssembledPrompts, ClassPromptAssembler
from models.prompt_init import init_context
from models.prompted_clip import PromptedCLIP
from trainers.prompt_trainer import PromptTrainer


class CoOpPromptLearner(AssembledPrompts, nn.Module):
    """The learned context (the only trainable tensor) and the per-class prompt layout."""

    def __init__(self, clip_model, classnames, n_ctx, ctx_init, csc, position):
        super().__init__()
        # As in CoOp, word initialisation gives one shared context whatever CSC says.
        vectors, prompt_prefix = init_context(
            clip_model, n_ctx, ctx_init, n_cls=len(classnames) if csc and not ctx_init else None
        )
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {vectors.shape[-2]}")
        self.ctx = nn.Parameter(vectors)
        self.assembler = ClassPromptAssembler(
            clip_model, classnames, prompt_prefix, vectors.shape[-2], position
        )

    learns_text = True
    learns_vision = False

    def text_inputs(self, class_ids=None):
        return self.assembler.text_inputs(self.ctx, class_ids)

    def vision_inputs(self):
        return None, None


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    config_node = "COOP"
    config_keys = {
        "N_CTX": 16,  # number of context vectors
        "CSC": False,  # class-specific context
        "CTX_INIT": "",  # initialisation words, e.g. "a photo of a"
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
        "CLASS_TOKEN_POSITION": "end",  # end | middle | front
    }

    @classmethod
    def build_prompted_model(cls, cfg, clip_model, classnames):
        opts = cls.options(cfg)
        prompt_learner = CoOpPromptLearner(
            clip_model, classnames, opts.N_CTX, opts.CTX_INIT, opts.CSC,
            opts.CLASS_TOKEN_POSITION,
        )
        return PromptedCLIP(clip_model, prompt_learner)
