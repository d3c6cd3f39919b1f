"""The epoch loop: the one home for both engines.

``TrainingLoop`` is mixed into the bundled ``TrainerX`` and into ``ClipTrainer``, which
puts it in front of a real Dassl's TrainerX. It is Dassl's TrainerX loop (same hooks,
same log line, ``engine.bundled.train_log``) plus:

* a checkpoint every ``TRAIN.CHECKPOINT_ITERS`` batches within an epoch; resuming from
  one replays the epoch's sampler order and skips the batches already done (they are
  loaded, not trained on), so the run goes on exactly as it would have;
* training resumes only when asked (``cfg.RESUME``), never silently from OUTPUT_DIR;
* a non-finite loss skips its optimizer step with a warning, and
  ``TRAIN.MAX_NONFINITE_STEPS`` of them in a row abort the run in one line;
* a distributed sampler gets a new, reproducible order each epoch.

It relies on ``engine.bundled.checkpointing.Checkpointing`` for the checkpoints.
"""
import os.path as osp
import time

import torch

from engine.bundled.rng_state import rng_state, set_rng_state
from engine.bundled.train_log import log_training_step
from engine.bundled.utils.meters import AverageMeter, MetricMeter
from engine.bundled.utils.tools import mkdir_if_missing
from engine.distributed import all_ranks_agree, is_main_process, set_sampler_epoch
from engine.user_errors import UserError


class NonFiniteLossError(UserError):
    """Too many training steps in a row had a NaN or infinite loss."""


def begin_training(trainer):
    """Dassl's before_train, except that a checkpoint is resumed only when asked.

    Dassl resumes from OUTPUT_DIR whenever it holds checkpoints; we resume only from
    RESUME (train.py --resume), and train.py refuses to train into a folder holding a run
    otherwise, so nothing is continued or overwritten silently. Tensorboard events come
    from rank 0 only.
    """
    if trainer.cfg.RESUME:
        trainer.start_epoch = trainer.resume_model_if_exist(trainer.cfg.RESUME)
    else:
        print("Training from scratch (RESUME is not set)")
        trainer.start_epoch = 0
    if is_main_process():
        writer_dir = osp.join(trainer.output_dir, "tensorboard")
        mkdir_if_missing(writer_dir)
        trainer.init_writer(writer_dir)
    trainer.time_start = time.time()


class TrainingLoop:
    """Dassl's TrainerX epoch loop with mid-epoch checkpoints and the non-finite policy."""

    _nonfinite_in_a_row = 0
    _nonfinite_total = 0
    _nonfinite_epoch = 0

    def before_train(self):
        begin_training(self)

    def run_epoch(self):
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
