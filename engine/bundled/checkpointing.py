"""Saving, resuming and loading a trainer's registered models: the one home for both engines.

``Checkpointing`` is mixed into the bundled ``TrainerBase`` and into ``ClipTrainer``, which
puts it in front of a real Dassl's TrainerBase (whose checkpoints are written in place,
without RNG states, and read by a second, unguarded loader). Files keep Dassl's layout
(``OUTPUT_DIR/<model name>/model.pth.tar-<epoch>``, the ``checkpoint`` pointer,
``model-best.pth.tar``) and its messages, but:

* they are written atomically by rank 0 only, read with ``weights_only=True``, and a
  file that is missing, unreadable or does not fit the model is one error line;
* they also hold a ``resume_state``: every rank's RNG state, the GradScaler, the best
  val result, the position inside an epoch (``TRAIN.CHECKPOINT_ITERS``) and whatever
  the trainer adds through ``extra_checkpoint_state()``, so a resumed run repeats the
  uninterrupted one exactly;
* ``load_model`` deploys the asked epoch, else model-best, else the last epoch
  (``find_checkpoint``), for every trainer alike.
"""
import os.path as osp

import numpy as np

from engine.bundled.rng_state import per_rank, rng_state, set_rng_state, this_ranks
from engine.bundled.utils.checkpoint import (
    MissingCheckpoint, load_weights, restore_checkpoint, save_checkpoint,
)
from engine.checkpoint_files import (
    MID_EPOCH_CHECKPOINT, deployed_checkpoint_names, find_checkpoint, resume_checkpoint,
    saved_epochs,
)
from engine.distributed import barrier, is_main_process


class Checkpointing:
    """Dassl's save_model / resume_model_if_exist / load_model, plus exact resume."""

    ignored_checkpoint_keys = ()  # last parts of state-dict keys that load_model leaves out
    checkpoint_mismatch_hint = ""  # what a checkpoint that does not fit asks the user to check
    # Set by a mid-epoch resume, used by the epoch loop (engine.bundled.training_loop):
    # (batches already done, the epoch's start RNG state, the RNG state after them).
    _mid_epoch_resume = None
    _epoch_start_rng = None  # set by the epoch loop; saved with mid-epoch checkpoints

    # ------------------------------------------------------------------ hooks

    def extra_checkpoint_state(self):
        """State besides weights, optimizer and scheduler that a resumed run needs (e.g. a
        running average of the prompts): plain tensors, numbers, strings, lists, dicts.
        Saved with every checkpoint and handed to ``restore_extra_checkpoint_state``."""
        return {}

    def restore_extra_checkpoint_state(self, state):
        """Put back what ``extra_checkpoint_state`` returned, when resuming from a
        checkpoint that holds it."""

    def prompt_layout(self):
        """The config keys (full names) that define what the saved weights mean, with this
        run's values: recorded in every checkpoint, and a checkpoint recording other
        values is refused at load, naming the keys (e.g. CLASS_TOKEN_POSITION, CSC)."""
        return {}

    def on_weights_loaded(self):
        """Called after ``load_model`` or a resume changed the weights."""

    def no_checkpoint_note(self):
        """What ``load_model`` prints when there is no folder to load from."""
        return ("Note that load_model() is skipped as no pretrained model is given "
                "(ignore this if it's done on purpose)")

    # ------------------------------------------------------------------ saving

    def resume_state(self, batches_done=0):
        """What, besides weights, optimizer and scheduler, an exact resume needs."""
        scaler = self.__dict__.get("scaler")
        return {
            "rng": per_rank(rng_state()),
            "batches_done": batches_done,
            "epoch_start_rng": per_rank(self._epoch_start_rng) if batches_done else None,
            "best_result": float(getattr(self, "best_result", -np.inf)),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "extra": self.extra_checkpoint_state(),
        }

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Dassl's checkpoint after 0-based ``epoch`` (it stores ``epoch + 1``, the
        epochs done), with the resume state."""
        self._save_checkpoints(directory, epoch + 1, self.resume_state(), is_best=is_best,
                               val_result=val_result, model_name=model_name)

    def save_mid_epoch_checkpoint(self, batches_done):
        """A checkpoint after ``batches_done`` batches of the current epoch."""
        self._save_checkpoints(self.output_dir, self.epoch, self.resume_state(batches_done),
                               model_name=MID_EPOCH_CHECKPOINT)

    def _save_checkpoints(self, directory, epochs_done, resume, is_best=False, val_result=None,
                          model_name=""):
        if is_main_process():  # one writer per run; the others wait until it is on disk
            for name in self.get_model_names():
                optim, sched = self._optims[name], self._scheds[name]
                save_checkpoint(
                    {
                        "state_dict": self._models[name].state_dict(),
                        "epoch": epochs_done,
                        "optimizer": optim.state_dict() if optim is not None else None,
                        "optimizer_type": type(optim).__name__ if optim is not None else None,
                        "scheduler": sched.state_dict() if sched is not None else None,
                        "val_result": val_result,
                        "resume_state": resume,
                        "prompt_layout": self.prompt_layout(),
                    },
                    osp.join(directory, name),
                    is_best=is_best,
                    model_name=model_name,
                )
        barrier()

    # ------------------------------------------------------------------ resuming

    def resume_model_if_exist(self, directory):
        """Restore each model's checkpoint to resume from (``resume_checkpoint``: the one
        its ``checkpoint`` pointer names, else the newest epoch); return the 0-based epoch
        to start from. The resume state is restored too when the checkpoint has it."""
        names = self.get_model_names()
        paths = {name: resume_checkpoint(osp.join(directory, name)) for name in names}
        if not names or None in paths.values():
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch, resume = 0, None
        for name in names:
            checkpoint = restore_checkpoint(
                paths[name], self._models[name],
                self._optims[name], self._scheds[name], hint=self.checkpoint_mismatch_hint,
                layout=self.prompt_layout(),
            )
            start_epoch = checkpoint["epoch"]
            resume = resume or checkpoint.get("resume_state")
        print(f"Previous epoch: {start_epoch}")
        self.on_weights_loaded()
        if resume is None:  # written by another toolbox: weights and optimizer only
            print("The checkpoint has no RNG state: the resumed run will not repeat the "
                  "uninterrupted one exactly")
        else:
            self._restore_resume_state(resume, start_epoch)
        return start_epoch

    def _restore_resume_state(self, resume, start_epoch):
        self.best_result = resume.get("best_result", getattr(self, "best_result", -np.inf))
        scaler = self.__dict__.get("scaler")
        if scaler is not None and resume.get("scaler") is not None:
            scaler.load_state_dict(resume["scaler"])
        if "extra" in resume:
            self.restore_extra_checkpoint_state(resume["extra"])
        if resume.get("batches_done"):
            self._mid_epoch_resume = (
                resume["batches_done"], this_ranks(resume["epoch_start_rng"]),
                this_ranks(resume["rng"]),
            )
            print(f"Resuming inside epoch {start_epoch + 1} after "
                  f"{resume['batches_done']} batch(es)")
        else:
            set_rng_state(this_ranks(resume["rng"]))

    # ------------------------------------------------------------------ loading

    def load_model(self, directory, epoch=None):
        """Load every registered model from ``directory`` (``--model-dir``): epoch
        ``epoch`` if given, else model-best, else the last epoch."""
        if not directory:
            print(self.no_checkpoint_note())
            return
        for name in self.get_model_names():
            folder = osp.join(directory, name)
            path = find_checkpoint(folder, epoch)
            if path is None:
                wanted = deployed_checkpoint_names(epoch)
                epochs = saved_epochs(folder)
                there = (f"the epochs saved there are {', '.join(map(str, epochs))}" if epochs
                         else "no epoch is saved there")
                raise MissingCheckpoint(f"No model at {folder}: it has no {wanted}; {there} "
                                        "(check --model-dir and --load-epoch)")
            checkpoint = load_weights(self._models[name], path, self.ignored_checkpoint_keys,
                                      self.checkpoint_mismatch_hint, layout=self.prompt_layout())
            val_result = checkpoint.get("val_result")  # absent in some checkpoints (Dassl #56)
            shown = "None" if val_result is None else f"{val_result:.1f}"
            print(f"Load {path} to {name} (epoch={checkpoint.get('epoch')}, val_result={shown})")
        self.on_weights_loaded()
