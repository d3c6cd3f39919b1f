"""The training step every prompt learner shares: cross-entropy on prompted-CLIP logits,
over all classes or over sampled classes, plus whatever a method adds in ``loss_terms``.

A subclass only says how to build its prompted model (``build_prompted_model``) and,
if it has more loss terms, how to compute them from the step's ``StepOutputs`` (the
image, labels, logits, sampled classes and the image and text features the logits came
from: one forward pass, nothing encoded twice). This base freezes everything but
``model.prompt_learner``, builds the optimizer and the scheduler for it, registers it as
the one checkpointed module, and trains under the configured precision with the loss in
fp32.

Class sampling (POMP's local contrast and local correction, ``models.class_sampling``)
is a switch for every prompt trainer: ``TRAINER.CLASS_SAMPLING.K > 0`` encodes only the
batch's classes plus K - 1 shared negatives per step, which is how CoOp, MaPLe, POMP and
RPP alike can train on ImageNet-21K's classes. ``DATALOADER.K_TRANSFORMS > 1`` (POMP's
several augmented views per image) is folded into the batch.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from engine import build_lr_scheduler, build_optimizer, compute_accuracy
from engine.checkpoint_files import find_checkpoint
from engine.config_extension import add_node, config_extension
from engine.user_errors import UserError
from models.class_sampling import SampledClasses, check_log_base, class_sampler_from_cfg
from models.precision import check_precision
from trainers.clip_trainer import ClipTrainer


PROMPT_MODULE = "prompt_learner"  # the one module prompt trainers register and checkpoint


def find_prompt_checkpoint(path, epoch=None):
    """The prompt checkpoint ``path`` names: the file itself, or in a run folder (or its
    ``prompt_learner`` folder) epoch ``epoch``, else model-best, else the last epoch
    (``find_checkpoint``, the rule ``load_model`` follows). None when there is none."""
    path = osp.expanduser(path)
    if osp.isfile(path):
        return path
    for folder in (osp.join(path, PROMPT_MODULE), path):
        found = find_checkpoint(folder, epoch)
        if found is not None:
            return found
    return None


@config_extension
def add_class_sampling_keys(cfg):
    add_node(cfg, "TRAINER.CLASS_SAMPLING", {
        "K": 0,  # classes per step: the batch's own + K - 1 sampled negatives (0: all classes)
        "LOG_BASE": 10.0,  # margin -log(p) in this base: 10 as POMP's code, 2.718281828459045 (e) textbook
        "CORRECTION": True,  # add the margin to the negative logits (local correction)
    })


@dataclass
class StepOutputs:
    """What one training step computed, for ``PromptTrainer.loss_terms``.

    Features are L2-normalised fp32, as the logits use them; ``text_features`` has a row
    per column of ``logits`` (all classes, or the sampled ``class_ids``), or is
    [B, n, E] when the class text depends on the image (CoCoOp).
    """

    image: torch.Tensor  # [B, 3, H, W], K_TRANSFORMS views folded into the batch
    label: torch.Tensor  # [B]
    logits: torch.Tensor  # [B, n] fp32 over the step's classes
    image_features: torch.Tensor  # [B, E]
    text_features: torch.Tensor  # [n, E] (or [B, n, E])
    sampled: Optional[SampledClasses] = None  # the step's classes under class sampling

    @property
    def class_ids(self):
        """The classes of the logits' columns (None: all classes, in order)."""
        return None if self.sampled is None else self.sampled.class_ids


class PromptTrainer(ClipTrainer):
    class_sampler = None

    def check_cfg(self, cfg):
        check_precision(self.options(cfg).PREC)
        check_log_base(cfg.TRAINER.CLASS_SAMPLING.LOG_BASE)

    @classmethod
    def build_prompted_model(cls, cfg, clip_model, classnames):
        """A module with a ``prompt_learner`` attribute whose forward gives logits.

        A classmethod of the config and class names only, so tools can rebuild a
        trained model for any class list without a dataset (tools/export_classifier.py).
        """
        raise NotImplementedError

    def build_model(self):
        clip_model = self.load_frozen_clip()
        print(f"Building custom CLIP ({type(self).__name__})")
        self.model = self.build_prompted_model(self.cfg, clip_model, self.classnames).to(self.device)
        for name, param in self.model.named_parameters():
            param.requires_grad_(name.startswith("prompt_learner."))
        trainable = [name for name, p in self.model.named_parameters() if p.requires_grad]
        self.optim = self.sched = None
        if trainable and not self.evaluating_only:
            print("Turning off gradients in both the image and the text encoder")
            print(f"Parameters to be updated: {trainable}")
            self.optim = build_optimizer(self.model.prompt_learner, self.cfg.OPTIM)
            self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model(PROMPT_MODULE, self.model.prompt_learner, self.optim, self.sched)
        self.scaler = self.make_grad_scaler()
        if not self.evaluating_only:
            self.class_sampler = class_sampler_from_cfg(self.cfg, len(self.classnames))
        if self.class_sampler is not None:
            sampler = self.class_sampler
            print(f"Class sampling: {sampler.k} classes per step out of {sampler.num_classes}, "
                  f"local correction {f'on (log base {sampler.log_base:g})' if sampler.correction else 'off'}")
        self.build_extra_models(clip_model)

    @property
    def learns_prompts(self):
        return any(p.requires_grad for p in self.model.prompt_learner.parameters())

    def no_checkpoint_note(self):
        if not self.learns_prompts:
            return (f"Nothing to load: {type(self).__name__} has no learnable prompts with this "
                    "config (all prompt depths 0), so it evaluates frozen CLIP")
        return super().no_checkpoint_note()

    def before_train(self):
        if self.evaluating_only:
            raise UserError("EVAL_ONLY is set (train.py --eval-only): this trainer was built for "
                            "evaluation only and cannot train")
        if self.optim is None:
            raise UserError(
                f"{type(self).__name__} has no learnable prompts with this config (all prompt "
                "depths 0): it is frozen CLIP; evaluate it with --eval-only"
            )
        super().before_train()

    def build_extra_models(self, clip_model):
        """Hook for what a method adds besides the prompted model (RPP: its KD teacher)."""

    def parse_batch_train(self, batch):
        views = batch["img"]
        if not isinstance(views, (list, tuple)):
            return super().parse_batch_train(batch)
        # K_TRANSFORMS augmented views of every image: one batch of K * B, labels repeated
        label = batch["label"].to(self.device)
        return torch.cat([view.to(self.device) for view in views]), label.repeat(len(views))

    def training_step(self, image, label):
        """The step's forward pass (through DDP when distributed), as ``StepOutputs``."""
        sampled = None if self.class_sampler is None else self.class_sampler.sample(label)
        classes = {} if sampled is None else {"class_ids": sampled.class_ids}
        outputs = self.forward_model(image, return_features=True, **classes)
        return StepOutputs(image, label, outputs.logits.float(), outputs.image_features,
                           outputs.text_features, sampled)

    def loss_terms(self, step):
        """Named loss terms of one ``StepOutputs`` (summed for the step); the supervised CE
        is always one. Methods with more terms extend this from the step's features."""
        if step.sampled is None:
            return {"loss_ce": F.cross_entropy(step.logits, step.label)}
        return {"loss_ce": step.sampled.cross_entropy(step.logits)}

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            step = self.training_step(image, label)
        terms = self.loss_terms(step)
        loss = sum(terms.values())
        self.step_with_scaler(loss, self.scaler)
        summary = {"loss": loss.item()}
        if len(terms) > 1:
            summary.update({name: value.item() for name, value in terms.items()})
        if step.sampled is None:
            summary["acc"] = compute_accuracy(step.logits, label)[0].item()
        else:  # accuracy among the sampled classes (positive = column 0)
            summary["acc"] = compute_accuracy(step.sampled.arrange(step.logits),
                                              step.sampled.targets())[0].item()
        self.finish_batch()
        return summary

    def model_inference(self, image):
        with self.autocast():
            return self.model(image).float()
