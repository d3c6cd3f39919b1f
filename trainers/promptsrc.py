"""PromptSRC (Khattak et al., ICCV 2023, "Self-regulating Prompts"): IVLP deep prompts
in both towers, regulated by the frozen CLIP they start from.

Prompts: IVLP's (``trainers.ivlp``), under ``TRAINER.PROMPTSRC``. Loss, as the official
``forward_backward`` computes it (fp32 here):

    CE(logits, label)
    + TEXT_LOSS_WEIGHT  * mean |prompted text features  - frozen text features|   (L1)
    + IMAGE_LOSS_WEIGHT * mean |prompted image features - frozen image features|  (L1)
    + KL(zero-shot || prompted) summed over the batch and classes / (B * C), T = 1

with every feature L2-normalised before the L1. The frozen text features are the class
names in PromptSRC's 60 templates (``models.templates.PROMPTSRC_TEMPLATES``), raw
features averaged over the templates and then normalised, encoded once per run; the
frozen image features come from one no-grad pass of the unprompted image tower per step
(``models.zero_shot.ZeroShotClassifier``, the teacher RPP distils from too), and the
zero-shot logits are the frozen image features against the frozen text features.

Gaussian prompt aggregation (GPA): after the last batch of every epoch e (1-based) the
prompts are added to a running sum with weight N(e; GPA_MEAN, GPA_STD) normalised over
epochs 1..MAX_EPOCH; after the last epoch's last batch the sum replaces the prompts, so
the checkpoint of the last epoch and the final test hold the aggregate (the official
order). The running sum is saved with every checkpoint, so a resumed run aggregates
exactly as an uninterrupted one.
"""
import math

import torch
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.user_errors import UserError
from models.distillation import kd_loss
from models.templates import PROMPTSRC_TEMPLATES
from models.zero_shot import ZeroShotClassifier
from trainers.ivlp import IVLP


def gpa_weights(max_epoch, mean, std):
    """Weight of each epoch 1..max_epoch in the aggregate: the Gaussian density at the
    epoch, normalised to sum to 1."""
    mean, std = float(mean), float(std)
    density = [math.exp(-0.5 * ((epoch - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
               for epoch in range(1, int(max_epoch) + 1)]
    total = sum(density)
    return [value / total for value in density]


class GaussianPromptAggregation:
    """The running sum over epochs of ``gpa_weights[epoch] * parameters`` (GPA)."""

    def __init__(self, max_epoch, mean, std):
        self.weights = gpa_weights(max_epoch, mean, std)
        self.sum = None  # {parameter name: weighted sum over the epochs added}

    @torch.no_grad()
    def add(self, epoch, parameters):
        """Add the ``parameters`` ({name: tensor}) reached at the end of 0-based ``epoch``."""
        weight = self.weights[epoch]
        weighted = {name: param.detach() * weight for name, param in parameters.items()}
        self.sum = weighted if self.sum is None else {
            name: self.sum[name] + value for name, value in weighted.items()}

    @torch.no_grad()
    def load_into(self, parameters):
        for name, param in parameters.items():
            param.copy_(self.sum[name])

    def state_dict(self):
        return {} if self.sum is None else {"sum": {name: value.clone() for name, value in self.sum.items()}}

    def load_state_dict(self, state, device=None):
        total = state.get("sum")
        self.sum = None if total is None else {name: value.to(device) for name, value in total.items()}


@TRAINER_REGISTRY.register()
class PromptSRC(IVLP):
    config_node = "PROMPTSRC"
    # IVLP's keys and these, with the official defaults and types (ints, as in the
    # official configs, which therefore load unchanged)
    config_keys = {
        "N_CTX_VISION": 4,  # number of vision prompt tokens
        "N_CTX_TEXT": 4,  # number of text prompt tokens
        "TEXT_LOSS_WEIGHT": 25,  # weight of the L1 between prompted and frozen text features
        "IMAGE_LOSS_WEIGHT": 10,  # weight of the L1 between prompted and frozen image features
        "GPA_MEAN": 15,  # epoch at the centre of the Gaussian prompt aggregation
        "GPA_STD": 1,  # its standard deviation, in epochs
    }
    teacher = None  # the frozen CLIP's zero-shot classifier (not built for eval-only runs)
    # Without vision prompts the student's image features are the frozen tower's: reused.
    teacher_reuses_image_features = False
    gpa = None  # GaussianPromptAggregation (not built for eval-only runs)

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if not float(self.options(cfg).GPA_STD) > 0:
            raise UserError(f"{self.config_path()}.GPA_STD must be > 0 (epochs), "
                            f"got {self.options(cfg).GPA_STD}")

    @staticmethod
    def build_frozen_reference(clip_model, classnames):
        """The frozen CLIP the prompts are regulated against: PromptSRC's 60 templates,
        raw text features averaged over them, then normalised."""
        return ZeroShotClassifier(clip_model, classnames, PROMPTSRC_TEMPLATES, normalize_each=False)

    def build_extra_models(self, clip_model):
        if self.evaluating_only:  # the frozen reference and the aggregation only shape training
            return
        self.teacher = self.build_frozen_reference(clip_model, self.classnames).to(self.device)
        self.teacher_reuses_image_features = not self.model.prompt_learner.learns_vision
        opts = self.options(self.cfg)
        self.gpa = GaussianPromptAggregation(self.cfg.OPTIM.MAX_EPOCH, opts.GPA_MEAN, opts.GPA_STD)
        print(f"Self-regulation against frozen CLIP ({len(PROMPTSRC_TEMPLATES)} templates): "
              f"text L1 x {opts.TEXT_LOSS_WEIGHT}, image L1 x {opts.IMAGE_LOSS_WEIGHT}, logits KL x 1; "
              f"GPA over {self.cfg.OPTIM.MAX_EPOCH} epochs, mean {opts.GPA_MEAN}, std {opts.GPA_STD}")

    # ------------------------------------------------------------------ losses

    def frozen_image_features(self, step):
        if self.teacher_reuses_image_features:
            return step.image_features.detach()
        with self.autocast():
            return self.teacher.image_features(step.image)

    def loss_terms(self, step):
        terms = super().loss_terms(step)
        if self.teacher is None:
            return terms
        opts = self.options(self.cfg)
        frozen_image = self.frozen_image_features(step)
        frozen_text = self.teacher.class_features(step.class_ids)
        zero_shot_logits = self.teacher.classify(frozen_image, step.class_ids)
        terms["loss_scl_text"] = float(opts.TEXT_LOSS_WEIGHT) * F.l1_loss(step.text_features, frozen_text)
        terms["loss_scl_image"] = float(opts.IMAGE_LOSS_WEIGHT) * F.l1_loss(step.image_features, frozen_image)
        logits = step.logits
        if step.sampled is not None:  # the same columns for both: positive + sampled negatives
            logits, zero_shot_logits = step.sampled.arrange(logits), step.sampled.arrange(zero_shot_logits)
        # Official: KL summed over batch and classes, divided by B * C; kd_loss averages
        # over the batch only, so / C.
        terms["loss_scl_logits"] = kd_loss(logits, zero_shot_logits, 1.0) / logits.shape[1]
        return terms

    # ------------------------------------------------------------------ aggregation

    def gpa_parameters(self):
        return {name: param for name, param in self.model.prompt_learner.named_parameters()
                if param.requires_grad}

    def finish_batch(self):
        super().finish_batch()
        if self.gpa is None or (self.batch_idx + 1) != self.num_batches:
            return
        self.gpa.add(self.epoch, self.gpa_parameters())
        if self.epoch + 1 == self.max_epoch:
            print("Using the GPA prompts (Gaussian-weighted over the epochs) from here on")
            self.gpa.load_into(self.gpa_parameters())
            self.clear_text_feature_cache()

    def extra_checkpoint_state(self):
        state = super().extra_checkpoint_state()
        if self.gpa is not None:
            state["gpa"] = self.gpa.state_dict()
        return state

    def restore_extra_checkpoint_state(self, state):
        super().restore_extra_checkpoint_state(state)
        if self.gpa is not None and "gpa" in state:
            self.gpa.load_state_dict(state["gpa"], self.device)
