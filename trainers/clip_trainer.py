"""What every CLIP trainer shares, so no trainer keeps its own copy.

Loading the frozen CLIP (one loader), class names, batch parsing, mixed precision,
the per-test-run text-feature cache, loading prompt-only checkpoints, and the
reliability layer, written against Dassl's hooks so it works on both backends:

* exact resume: checkpoints also hold the RNG states (torch, NumPy, Python; they fix
  the sampler order and the augmentations), the GradScaler and the best val result,
  and are written atomically; ``TRAIN.CHECKPOINT_ITERS`` adds mid-epoch checkpoints
  whose resume replays the epoch's sampler order and skips the batches already done;
* resume only when asked (``cfg.RESUME``), never silently from OUTPUT_DIR;
* a non-finite loss skips its step with a warning and aborts the run after
  ``TRAIN.MAX_NONFINITE_STEPS`` in a row.

Under torchrun the model is also wrapped in DistributedDataParallel (``ddp_model``);
``forward_model`` is the one training forward that goes through it, and only rank 0
writes checkpoints and tensorboard events (docs/distributed.md).
"""
import os.path as osp
import random
import time

import numpy as np
import torch

from engine import AverageMeter, MetricMeter, TrainerX, load_checkpoint
from engine.bundled.data import loader_options  # noqa: F401  (registers DATALOADER keys)
from engine.bundled.utils.checkpoint import POINTER_FILE
from engine.bundled.utils.checkpoint import load_checkpoint as safe_load_checkpoint
from engine.bundled.train_log import log_training_step
from engine.bundled.trainer import begin_training
from engine.bundled.utils.checkpoint import save_checkpoint as atomic_save_checkpoint
from engine.distributed import (
    all_gather_objects, all_ranks_agree, barrier, get_rank, get_world_size, is_distributed,
    is_main_process, set_sampler_epoch, wrap_in_ddp,
)
from engine.user_errors import UserError
from models.clip_loader import input_resolution, load_clip_from_cfg
from models.precision import autocast, check_precision, make_grad_scaler
from models.state_dict_check import state_dict_problems


class PromptCheckpointMismatch(UserError):
    """A prompt checkpoint whose keys or shapes do not fit the configured model."""


class NonFiniteLossError(UserError):
    """Too many training steps in a row had a NaN or infinite loss."""


MID_EPOCH_CHECKPOINT = "model-mid-epoch.pth.tar"  # rewritten every TRAIN.CHECKPOINT_ITERS


def rng_state():
    """Every global RNG state as plain tensors and numbers (weights_only-loadable)."""
    version, mt_state, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
            "has_gauss": int(np_has_gauss), "gauss": float(np_gauss),
        },
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64),
                   "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((
        "MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
        np_state["has_gauss"], np_state["gauss"],
    ))
    py_state = state["python"]
    random.setstate((py_state["version"], tuple(py_state["state"].tolist()), py_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def per_rank(state):
    """In multi-process runs, every rank's RNG state (a list, saved by rank 0)."""
    return all_gather_objects(state) if is_distributed() else state


def this_ranks(state):
    """The RNG state this process resumes from: its own from a multi-process checkpoint
    of the same size, else rank 0's (or the single one)."""
    if not isinstance(state, list):
        return state
    return state[get_rank()] if len(state) == get_world_size() else state[0]


class ClipTrainer(TrainerX):
    """Base for CLIP trainers. Subclasses set ``config_node`` (e.g. "COOP") for PREC."""

    config_node = None
    _nonfinite_in_a_row = 0
    _nonfinite_total = 0
    _nonfinite_epoch = 0
    _mid_epoch_resume = None  # (batches done, epoch-start RNG, RNG after them)
    ddp_model = None  # self.model in DistributedDataParallel, in multi-process runs

    def __init__(self, cfg):
        super().__init__(cfg)
        # self.model stays the plain module (unprefixed state dicts, inference, prompt
        # access); only the training forward goes through the wrapper.
        if is_distributed() and isinstance(self.__dict__.get("model"), torch.nn.Module):
            self.ddp_model = wrap_in_ddp(self.model)

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

    def model_backward_and_update(self, loss, names=None):
        """Dassl's zero_grad/backward/step, but a non-finite loss skips the step."""
        if not self.check_finite_loss(loss):
            self.model_zero_grad(names)
            return
        super().model_backward_and_update(loss, names)

    def check_finite_loss(self, loss):
        """True if ``loss`` is finite; else count it, warn, and return False (skip the step).

        Raises NonFiniteLossError at TRAIN.MAX_NONFINITE_STEPS non-finite losses in a
        row (0: never).
        """
        # Ranks must agree: one rank skipping backward would leave the others waiting in
        # DDP's gradient all-reduce.
        if all_ranks_agree(bool(torch.isfinite(loss).all())):
            self._nonfinite_in_a_row = 0
            return True
        self._nonfinite_in_a_row += 1
        self._nonfinite_total += 1
        self._nonfinite_epoch += 1
        value = loss.detach().float().flatten()
        nonfinite = value[~torch.isfinite(value)]
        value = nonfinite[0].item() if len(nonfinite) else "finite here, non-finite on another rank"
        where = self._where()
        limit = int(self.cfg.TRAIN.get("MAX_NONFINITE_STEPS", 5))
        if 0 < limit <= self._nonfinite_in_a_row:
            raise NonFiniteLossError(
                f"Training aborted: the loss was non-finite ({value}) for "
                f"{self._nonfinite_in_a_row} step(s) in a row, the last at {where} "
                f"(TRAIN.MAX_NONFINITE_STEPS {limit}); lower OPTIM.LR, train in fp32 "
                "(PREC), or check the data"
            )
        print(
            f"Warning: non-finite loss ({value}) at {where}: step skipped "
            f"({self._nonfinite_in_a_row} in a row, {self._nonfinite_total} in total)"
        )
        return False

    def _where(self):
        if "batch_idx" not in self.__dict__:
            return f"epoch [{self.epoch + 1}/{self.max_epoch}]"
        num_batches = self.__dict__.get("num_batches", "?")
        return (f"epoch [{self.epoch + 1}/{self.max_epoch}] "
                f"batch [{self.batch_idx + 1}/{num_batches}]")

    # ------------------------------------------------------------------ training loop

    def before_train(self):
        begin_training(self)  # also on a real Dassl, whose own resumes silently

    def run_epoch(self):
        """Dassl's TrainerX epoch (same log line), plus mid-epoch checkpoints and resume."""
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        checkpoint_iters = int(self.cfg.TRAIN.get("CHECKPOINT_ITERS", 0))
        self._nonfinite_epoch = 0
        set_sampler_epoch(self.train_loader_x, self.epoch)

        skip, rng_after_skip = 0, None
        if self._mid_epoch_resume is not None:
            skip, epoch_start_rng, rng_after_skip = self._mid_epoch_resume
            self._mid_epoch_resume = None
            # The epoch's start RNG state gives the same sampler order (and worker
            # seeds); the batches already trained on are loaded again but not used.
            set_rng_state(epoch_start_rng)
            print(f"Resuming epoch [{self.epoch + 1}/{self.max_epoch}] after batch "
                  f"[{skip}/{self.num_batches}]: skipping the batches already done")
        self._epoch_start_rng = rng_state()

        end = time.time()
        for self.batch_idx, batch in enumerate(self.train_loader_x):
            if self.batch_idx < skip:
                if self.batch_idx + 1 == skip:
                    set_rng_state(rng_after_skip)
                end = time.time()
                continue
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            batch_time.update(time.time() - end)
            losses.update(loss_summary)

            log_training_step(self, losses, batch_time, data_time)

            done = self.batch_idx + 1
            if checkpoint_iters > 0 and done % checkpoint_iters == 0 and done < self.num_batches:
                self.save_mid_epoch_checkpoint(done)
            end = time.time()

        if self._nonfinite_epoch:
            print(f"Skipped {self._nonfinite_epoch} step(s) with a non-finite loss in epoch "
                  f"[{self.epoch + 1}/{self.max_epoch}] ({self._nonfinite_total} in total)")

    # ------------------------------------------------------------------ checkpoints

    def resume_state(self, batches_done=0):
        """What, besides weights/optimizer/scheduler, an exact resume needs."""
        scaler = self.__dict__.get("scaler")
        return {
            "rng": per_rank(rng_state()),
            "batches_done": batches_done,
            "epoch_start_rng": (per_rank(self.__dict__.get("_epoch_start_rng"))
                                if batches_done else None),
            "best_result": float(self.best_result),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Dassl's checkpoint (epoch + 1 = epochs done), written atomically, with the
        resume state; on Dassl too, since the bundled save_checkpoint is used."""
        self._save_checkpoints(directory, epoch + 1, self.resume_state(), is_best=is_best,
                               val_result=val_result, model_name=model_name)

    def save_mid_epoch_checkpoint(self, batches_done):
        """A checkpoint after ``batches_done`` batches of the current epoch."""
        self._save_checkpoints(self.output_dir, self.epoch, self.resume_state(batches_done),
                               model_name=MID_EPOCH_CHECKPOINT)

    def _save_checkpoints(self, directory, epochs_done, resume, is_best=False, val_result=None,
                          model_name=""):
        if is_main_process():  # one writer per run; the others wait until it is on disk
            self._write_checkpoints(directory, epochs_done, resume, is_best, val_result,
                                    model_name)
        barrier()

    def _write_checkpoints(self, directory, epochs_done, resume, is_best, val_result,
                           model_name):
        for name in self.get_model_names():
            optim = self._optims[name]
            sched = self._scheds[name]
            atomic_save_checkpoint(
                {
                    "state_dict": self._models[name].state_dict(),
                    "epoch": epochs_done,
                    "optimizer": optim.state_dict() if optim is not None else None,
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "val_result": val_result,
                    "resume_state": resume,
                },
                osp.join(directory, name),
                is_best=is_best,
                model_name=model_name,
            )

    def resume_model_if_exist(self, directory):
        """Restore the checkpoints named by each model's ``checkpoint`` file; return the
        0-based epoch to start from. RNG, GradScaler, best val result and a mid-epoch
        position are restored too when the checkpoint has them."""
        names = self.get_model_names()
        if not names or any(not osp.isfile(osp.join(directory, n, POINTER_FILE)) for n in names):
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch, resume = 0, None
        for name in names:
            fdir = osp.join(directory, name)
            with open(osp.join(fdir, POINTER_FILE)) as f:
                fpath = osp.join(fdir, f.readline().strip())
            print(f'Loading checkpoint from "{fpath}"')
            checkpoint = safe_load_checkpoint(fpath)
            load_prompt_state(self._models[name], checkpoint["state_dict"], fpath)
            print("Loaded model weights")
            if self._optims[name] is not None and checkpoint.get("optimizer") is not None:
                self._optims[name].load_state_dict(checkpoint["optimizer"])
                print("Loaded optimizer")
            if self._scheds[name] is not None and checkpoint.get("scheduler") is not None:
                self._scheds[name].load_state_dict(checkpoint["scheduler"])
                print("Loaded scheduler")
            start_epoch = checkpoint["epoch"]
            resume = resume or checkpoint.get("resume_state")
        print(f"Previous epoch: {start_epoch}")
        if resume is None:  # written by another toolbox: weights and optimizer only
            print("The checkpoint has no RNG state: the resumed run will not repeat the "
                  "uninterrupted one exactly")
            return start_epoch
        self.best_result = resume.get("best_result", self.best_result)
        scaler = self.__dict__.get("scaler")
        if scaler is not None and resume.get("scaler") is not None:
            scaler.load_state_dict(resume["scaler"])
        if resume.get("batches_done"):
            self._mid_epoch_resume = (
                resume["batches_done"], this_ranks(resume["epoch_start_rng"]),
                this_ranks(resume["rng"]),
            )
            print(f"Resuming inside epoch {start_epoch + 1} after "
                  f"{resume['batches_done']} batch(es)")
        else:
            set_rng_state(this_ranks(resume["rng"]))
        return start_epoch

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
        self.clear_text_feature_cache()  # features of the old prompts must not be reused


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
