"""What every CLIP trainer shares, so no trainer keeps its own copy.

Loading the frozen CLIP (one loader), class names, batch parsing, mixed precision,
the text-feature cache around test runs, and DDP. The epoch loop and the checkpoints
are the engine's (``engine.bundled.training_loop``, ``engine.bundled.checkpointing``),
mixed in front of whichever TrainerX the engine provides, so on a real Dassl too a run
resumes exactly (also mid-epoch), only when asked, and skips non-finite steps.

Under torchrun the model is also wrapped in DistributedDataParallel (``ddp_model``);
``forward_model`` is the one training forward that goes through it, and only rank 0
writes checkpoints and tensorboard events (docs/distributed.md).
"""
import re

import torch

from engine import TrainerX
from engine.bundled.checkpointing import Checkpointing
from engine.bundled.data import loader_options  # noqa: F401  (registers DATALOADER keys)
from engine.bundled.training_loop import TrainingLoop
from engine.config_extension import TrainerConfigNode
from engine.distributed import is_distributed, wrap_in_ddp
from engine.user_errors import UserError
from models.clip_loader import input_resolution, load_clip_from_cfg
from models.precision import autocast, check_precision, make_grad_scaler


# The bundled TrainerX is built on these mixins already; a real Dassl's gets them in front.
ENGINE_MIXINS = tuple(mixin for mixin in (TrainingLoop, Checkpointing) if not issubclass(TrainerX, mixin))


class ClipTrainer(TrainerConfigNode, *ENGINE_MIXINS, TrainerX):
    """Base for CLIP trainers. A subclass declares its options node (``config_node``,
    e.g. "COOP", and ``config_keys``); PREC is read from it."""

    # Official CoOp-style checkpoints also hold these frozen per-class buffers; ours
    # do not (they are rebuilt from the current class names), so they are dropped.
    ignored_checkpoint_keys = ("token_prefix", "token_suffix")
    checkpoint_mismatch_hint = ("check N_CTX, CSC, prompt depth and backbone against the run "
                                "that wrote it")
    ddp_model = None  # self.model in DistributedDataParallel, in multi-process runs
    # Node keys that fix the prompts' shape or meaning: a checkpoint records them
    # (prompt_layout) and is refused when loaded under other values.
    PROMPT_LAYOUT_KEYS = re.compile(
        r"^(CLASS_TOKEN_POSITION|CSC|CTX_INIT|N_CTX\w*|\w*PROMPT_DEPTH\w*|SHARE_QKV)$")

    def __init__(self, cfg):
        super().__init__(cfg)
        # self.model stays the plain module (unprefixed state dicts, inference, prompt
        # access); only the training forward goes through the wrapper.
        if is_distributed() and isinstance(self.__dict__.get("model"), torch.nn.Module):
            self.ddp_model = wrap_in_ddp(self.model)

    @property
    def precision(self):
        node = self.options(self.cfg) if self.config_node else None
        return check_precision(node.PREC if node is not None and "PREC" in node else "fp32")

    def prompt_layout(self):
        return self.prompt_layout_of(self.cfg)

    @classmethod
    def prompt_layout_of(cls, cfg):
        """``prompt_layout`` of a run of this trainer under ``cfg``."""
        layout = {"MODEL.BACKBONE.NAME": cfg.MODEL.BACKBONE.NAME}
        if cls.config_node:
            for key, value in cls.options(cfg).items():
                if cls.PROMPT_LAYOUT_KEYS.match(key):
                    layout[f"{cls.config_path()}.{key}"] = value
        return layout

    @property
    def evaluating_only(self):
        """An eval-only run (train.py --eval-only): build and print only what testing needs."""
        return bool(self.cfg.get("EVAL_ONLY", False))

    @property
    def classnames(self):
        return [name.replace("_", " ") for name in self.dm.dataset.classnames]

    def load_frozen_clip(self):
        cfg = self.cfg
        print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        clip_model = load_clip_from_cfg(cfg)
        resolution = input_resolution(clip_model)
        if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
            raise UserError(
                f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the input resolution "
                f"{resolution} of backbone {cfg.MODEL.BACKBONE.NAME}; set INPUT.SIZE "
                f"({resolution}, {resolution})"
            )
        return clip_model.to(self.device)

    def autocast(self):
        return autocast(self.precision, self.device)

    def make_grad_scaler(self):
        return make_grad_scaler(self.precision, self.device)

    def forward_model(self, *args, **kwargs):
        """The training forward pass of ``self.model``; through DDP in multi-process runs,
        whose backward then averages the prompt gradients over the ranks."""
        if self.ddp_model is not None:
            return self.ddp_model(*args, **kwargs)
        return self.model(*args, **kwargs)

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def step_with_scaler(self, loss, scaler):
        """Backward + update through a GradScaler (fp16), else Dassl's plain path."""
        if scaler is None:
            self.model_backward_and_update(loss)
            return
        self.model_zero_grad()
        if not self.check_finite_loss(loss):
            return
        scaler.scale(loss).backward()
        for name in self.get_model_names():
            if self._optims[name] is not None:
                scaler.step(self._optims[name])
        scaler.update()

    def finish_batch(self):
        """Dassl convention: trainers step the LR once per epoch, after the last batch."""
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()

    def test(self, split=None):
        # Learned class text is cached for one test run only (the prompts may change between
        # runs); fixed class text stays cached for the whole run (PromptedCLIP decides).
        self.clear_text_feature_cache()
        try:
            return super().test(split)
        finally:
            self.clear_text_feature_cache()

    def clear_text_feature_cache(self):
        model = self.__dict__.get("model")
        if model is not None and hasattr(model, "clear_text_feature_cache"):
            model.clear_text_feature_cache()

    def on_weights_loaded(self):
        self.clear_text_feature_cache()  # features of the old prompts must not be reused
