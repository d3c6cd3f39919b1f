"""Zero-shot CLIP: hand-crafted prompts, no training (CoOp's ZeroshotCLIP/ZeroshotCLIP2)."""
from engine import TRAINER_REGISTRY
from models.templates import IMAGENET_TEMPLATES_SELECT, template_for
from models.zero_shot import ZeroShotClassifier
from trainers.clip_trainer import ClipTrainer


def zeroshot_templates(dataset_name, ensemble):
    """The dataset's template, or CoOp's 7-template ensemble plus it."""
    own = template_for(dataset_name)
    if not ensemble:
        return [own]
    templates = list(IMAGENET_TEMPLATES_SELECT)
    if own not in templates:
        templates.append(own)
    return templates


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(ClipTrainer):
    config_node = "ZSCLIP"
    config_keys = {
        "ENSEMBLE": False,  # CoOp's 7 ImageNet templates plus the dataset's, averaged
        "PREC": "fp32",  # fp16 | fp32 | amp | bf16
    }
    use_template_ensemble = False

    def build_model(self):
        ensemble = self.use_template_ensemble or self.options(self.cfg).ENSEMBLE
        templates = zeroshot_templates(self.cfg.DATASET.NAME, ensemble)
        print(f"Prompt templates: {templates}")
        self.classifier = ZeroShotClassifier(self.load_frozen_clip(), self.classnames, templates)

    def no_checkpoint_note(self):
        return "Nothing to load: zero-shot CLIP evaluates the hand-crafted prompts above"

    @property
    def text_features(self):
        return self.classifier.text_features

    def model_inference(self, image):
        with self.autocast():
            return self.classifier(image)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """CoOp's name for the prompt-ensemble variant."""

    use_template_ensemble = True
