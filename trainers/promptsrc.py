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
    gpa_sum = None  # {prompt parameter name: weighted sum over the epochs done}

    def build_extra_models(self, clip_model):
        if self.evaluating_only:  # the frozen targets and the aggregation only shape training
            return
        self.teacher = ZeroShotClassifier(clip_model, self.classnames, PROMPTSRC_TEMPLATES,
                                          normalize_each=False).to(self.device)
        self.teacher_reuses_image_features = not self.model.prompt_learner.learns_vision
        opts = self.options(self.cfg)
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
        frozen_text = self.teacher.text_features
        if step.class_ids is not None:
            frozen_text = frozen_text[step.class_ids]
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
        if (self.batch_idx + 1) != self.num_batches:
            return
        opts = self.options(self.cfg)
        weight = gpa_weights(self.max_epoch, opts.GPA_MEAN, opts.GPA_STD)[self.epoch]
        with torch.no_grad():
            weighted = {name: param.detach() * weight for name, param in self.gpa_parameters().items()}
            if self.gpa_sum is None:
                self.gpa_sum = weighted
            else:
                self.gpa_sum = {name: self.gpa_sum[name] + value for name, value in weighted.items()}
            if self.epoch + 1 == self.max_epoch:
                print("Using the GPA prompts (Gaussian-weighted over the epochs) from here on")
                for name, param in self.gpa_parameters().items():
                    param.copy_(self.gpa_sum[name])
                self.clear_text_feature_cache()

    def extra_checkpoint_state(self):
        state = super().extra_checkpoint_state()
        if self.gpa_sum is not None:
            state["gpa_sum"] = {name: value.clone() for name, value in self.gpa_sum.items()}
        return state

    def restore_extra_checkpoint_state(self, state):
        super().restore_extra_checkpoint_state(state)
        gpa_sum = state.get("gpa_sum")
        self.gpa_sum = None if gpa_sum is None else {
            name: value.to(self.device) for name, value in gpa_sum.items()}
