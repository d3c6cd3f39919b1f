"""The trainer base of the deep-prompt methods (IVLP, VPT, MaPLe, RPP): a deep prompt
learner on CLIP's frozen text and vision towers, run by the one ``VisionEncoder``."""
from models.deep_prompts import check_depth
from models.prompted_clip import PromptedCLIP
from models.vision_encoder import VisionEncoder
from trainers.prompt_trainer import PromptTrainer


class DeepPromptTrainer(PromptTrainer):
    """A subclass builds its prompt learner (``build_prompt_learner``); this builds the rest."""

    @classmethod
    def build_prompt_learner(cls, cfg, clip_model, image_encoder, classnames):
        raise NotImplementedError

    @classmethod
    def build_prompted_model(cls, cfg, clip_model, classnames):
        image_encoder = VisionEncoder(clip_model, cfg.MODEL.BACKBONE.NAME)
        prompt_learner = cls.build_prompt_learner(cfg, clip_model, image_encoder, classnames)
        return PromptedCLIP(clip_model, prompt_learner, image_encoder)


def vision_depth(image_encoder, depth, key, minimum=0):
    """Checked vision prompt depth; a non-ViT tower only accepts 0."""
    if int(depth) == 0 and minimum == 0:
        return 0
    image_encoder.check_prompts_supported()
    return check_depth(depth, image_encoder.num_layers, key, minimum)
