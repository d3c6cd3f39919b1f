"""Zero-shot CLIP: hand-crafted prompts, no training (CoOp's ZeroshotCLIP/ZeroshotCLIP2)."""
import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.config_extension import add_node, config_extension
from models.templates import IMAGENET_TEMPLATES_SELECT, template_for
from models.text_encoder import TextEncoder
from trainers.clip_trainer import ClipTrainer


@config_extension
def add_zsclip_keys(cfg):
    add_node(cfg, "TRAINER.ZSCLIP", {"ENSEMBLE": False, "PREC": "fp32"})


def zeroshot_templates(dataset_name, ensemble):
    """The dataset's template, or CoOp's 7-template ensemble plus it."""
    own = template_for(dataset_name)
    if not ensemble:
        return [own]
    templates = list(IMAGENET_TEMPLATES_SELECT)
    if own not in templates:
        templates.append(own)
    return templates


@torch.no_grad()
def zeroshot_text_features(clip_model, classnames, templates):
    """L2-normalised class embeddings, averaged over templates (encoded once per run)."""
    text_encoder = TextEncoder(clip_model)
    per_template = []
    for template in templates:
        features = text_encoder.encode_texts([template.format(name) for name in classnames])
        per_template.append(F.normalize(features.float(), dim=-1))
    mean = torch.stack(per_template).mean(dim=0)
    return F.normalize(mean, dim=-1)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipTrainer):
    config_node = "ZSCLIP"
    use_template_ensemble = False

    def build_model(self):
        self.clip_model = self.load_frozen_clip()
        ensemble = self.use_template_ensemble or self.cfg.TRAINER.ZSCLIP.ENSEMBLE
        templates = zeroshot_templates(self.cfg.DATASET.NAME, ensemble)
        print(f"Prompt templates: {templates}")
        self.text_features = zeroshot_text_features(self.clip_model, self.classnames, templates)

    @torch.no_grad()
    def model_inference(self, image):
        with self.autocast():
            image_features = self.clip_model.encode_image(image)
        image_features = F.normalize(image_features.float(), dim=-1)
        return self.clip_model.logit_scale.exp().float() * image_features @ self.text_features.t()


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """CoOp's name for the prompt-ensemble variant."""

    use_template_ensemble = True
