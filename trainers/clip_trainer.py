"""What every CLIP trainer shares, so no trainer keeps its own copy.

Loading the frozen CLIP (one loader), class names, batch parsing, mixed precision,
the per-test-run text-feature cache, and loading prompt-only checkpoints.
"""
import os.path as osp

import torch

from engine import TrainerX, load_checkpoint
from engine.user_errors import UserError
from models.clip_loader import input_resolution, load_clip_from_cfg
from models.precision import autocast, check_precision, make_grad_scaler
from models.state_dict_check import state_dict_problems


class PromptCheckpointMismatch(UserError):
    """A prompt checkpoint whose keys or shapes do not fit the configured model."""


class ClipTrainer(TrainerX):
    """Base for CLIP trainers. Subclasses set ``config_node`` (e.g. "COOP") for PREC."""

    config_node = None

    @property
    def precision(self):
        node = self.cfg.TRAINER.get(self.config_node) if self.config_node else None
        return check_precision(node.PREC if node is not None and "PREC" in node else "fp32")

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

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def step_with_scaler(self, loss, scaler):
        """Backward + update through a GradScaler (fp16), else Dassl's plain path."""
        if scaler is None:
            self.model_backward_and_update(loss)
            return
        self.model_zero_grad()
        self.detect_anomaly(loss)
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
        # Text features are cached for one test run only: prompts may change between runs.
        self.clear_text_feature_cache()
        try:
            return super().test(split)
        finally:
            self.clear_text_feature_cache()

    def clear_text_feature_cache(self):
        model = self.__dict__.get("model")
        if model is not None and hasattr(model, "clear_text_feature_cache"):
            model.clear_text_feature_cache()

    # Official CoOp-style checkpoints also hold these frozen per-class buffers; ours
    # do not (they are rebuilt from the current class names), so they are dropped.
    ignored_checkpoint_keys = ("token_prefix", "token_suffix")

    def load_model(self, directory, epoch=None):
        if not directory:
            print(
                "Note that load_model() is skipped as no pretrained model is given "
                "(ignore this if it's done on purpose)"
            )
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise FileNotFoundError(f"No model at {model_path}")
            checkpoint = load_checkpoint(model_path)
            state_dict = {
                key: value for key, value in checkpoint["state_dict"].items()
                if key.split(".")[-1] not in self.ignored_checkpoint_keys
            }
            print(f'Loading weights to {name} from "{model_path}" (epoch = {checkpoint["epoch"]})')
            load_prompt_state(self._models[name], state_dict, model_path)


def load_prompt_state(module, state_dict, source):
    """Strict load with one clear line when the checkpoint does not fit the module."""
    problems = state_dict_problems(module.state_dict(), state_dict)
    if problems:
        raise PromptCheckpointMismatch(
            f"Checkpoint {source} does not fit the configured prompts ({'; '.join(problems)}); "
            "check N_CTX, CSC, prompt depth and backbone against the run that wrote it"
        )
    with torch.no_grad():
        module.load_state_dict(state_dict, strict=True)
