"""Which checkpoint files a run folder holds: the one definition of "has a checkpoint".

Each registered model of a run has a folder ``OUTPUT_DIR/<model name>/`` with Dassl's
files: ``model.pth.tar-<epoch>``, ``model-best.pth.tar``, our
``model-mid-epoch.pth.tar`` and the ``checkpoint`` pointer naming the last one written.
A checkpoint is written before its pointer, so a kill between the two leaves a folder
with ``model.pth.tar-N`` and no pointer (or a pointer to an older file): such a folder
still resumes, from the newest file the rule below finds.

``resume_checkpoint`` is the rule for which file a resume continues from and
``find_checkpoint`` the rule for which file to deploy (``load_model``).

Used by ``--resume`` (``Checkpointing.resume_model_if_exist``), by train.py's refusal to
train into a folder holding a run (``engine.launch.previous_run``) and by the sweeps
(``python3 -m tools.has_checkpoint DIR``). Standard library only, so that the sweeps can
load it without importing torch.
"""
import os
import os.path as osp
import re

POINTER_FILE = "checkpoint"  # text file holding the basename of the last saved checkpoint
BEST_NAME = "model-best.pth.tar"
MID_EPOCH_CHECKPOINT = "model-mid-epoch.pth.tar"  # rewritten every TRAIN.CHECKPOINT_ITERS
EPOCH_CHECKPOINT = re.compile(r"^model\.pth\.tar-(\d+)$")
NOT_A_MODEL_FOLDER = ("tensorboard",)


class CheckpointFileError(ValueError):
    """A pointer file that cannot be followed (one line; a user error, see
    engine.bundled.utils.checkpoint)."""


def epoch_checkpoint_name(epoch):
    """Dassl's file name of the checkpoint after ``epoch`` epochs (``EPOCH_CHECKPOINT``)."""
    return f"model.pth.tar-{epoch}"


def saved_epochs(folder):
    """The epochs of the ``model.pth.tar-<epoch>`` files in ``folder``, ascending."""
    if not osp.isdir(folder):
        return []
    return sorted(int(m.group(1)) for m in map(EPOCH_CHECKPOINT.match, os.listdir(folder)) if m)


def pointed_checkpoint(folder):
    """The file the pointer in ``folder`` names, or None without a pointer.

    Raises CheckpointFileError for a pointer that is not a line of text naming an
    existing file in ``folder`` itself.
    """
    pointer = osp.join(folder, POINTER_FILE)
    if not osp.isfile(pointer):
        return None
    with open(pointer, "rb") as f:
        raw = f.read(4096)
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if not name or "\x00" in name or "\n" in name:
        raise CheckpointFileError(
            f"The checkpoint pointer {pointer} is not a file name (it holds binary or empty "
            f"data); delete it to resume from the newest checkpoint in {folder}")
    if name != osp.basename(name) or name in (".", ".."):
        raise CheckpointFileError(
            f"The checkpoint pointer {pointer} names {name!r}, outside its folder; a pointer "
            f"names a file in {folder} (delete it to resume from the newest checkpoint there)")
    path = osp.join(folder, name)
    if not osp.isfile(path):
        raise CheckpointFileError(
            f"The checkpoint pointer {pointer} names {name}, which does not exist; delete "
            f"the pointer to resume from the newest checkpoint in {folder}")
    return path


def resume_checkpoint(folder):
    """The checkpoint a resume of one model folder continues from, or None if none.

    The file the pointer names; without a pointer, the highest ``model.pth.tar-<N>``,
    else the mid-epoch checkpoint, else ``model-best.pth.tar``.
    """
    pointed = pointed_checkpoint(folder)
    if pointed is not None:
        return pointed
    epochs = saved_epochs(folder)
    if epochs:
        return osp.join(folder, epoch_checkpoint_name(epochs[-1]))
    for name in (MID_EPOCH_CHECKPOINT, BEST_NAME):
        if osp.isfile(osp.join(folder, name)):
            return osp.join(folder, name)
    return None


def find_checkpoint(folder, epoch=None):
    """The checkpoint of one model folder to deploy (``load_model``, ``--model-dir``):
    ``model.pth.tar-<epoch>`` when ``epoch`` is given, else ``model-best.pth.tar``, else
    the highest-numbered epoch. None when there is no such file. (Resuming follows
    ``resume_checkpoint`` instead: the pointer, then the newest file.)"""
    if epoch is not None:
        path = osp.join(folder, epoch_checkpoint_name(epoch))
        return path if osp.isfile(path) else None
    best = osp.join(folder, BEST_NAME)
    if osp.isfile(best):
        return best
    epochs = saved_epochs(folder)
    return osp.join(folder, epoch_checkpoint_name(epochs[-1])) if epochs else None


def deployed_checkpoint_names(epoch=None):
    """What ``find_checkpoint(folder, epoch)`` looks for, in words (for "not found" lines)."""
    return (epoch_checkpoint_name(epoch) if epoch is not None
            else f"{BEST_NAME} or {epoch_checkpoint_name('<N>')}")


def checkpoint_files(folder):
    """The names of the checkpoint files (pointer included) in one model folder."""
    if not osp.isdir(folder):
        return []
    return sorted(name for name in os.listdir(folder)
                  if name in (POINTER_FILE, BEST_NAME, MID_EPOCH_CHECKPOINT)
                  or EPOCH_CHECKPOINT.match(name))


def run_checkpoint_files(run_dir):
    """``<model>/<file>`` for every checkpoint file of the run in ``run_dir``."""
    if not osp.isdir(run_dir):
        return []
    return [osp.join(entry, name) for entry in sorted(os.listdir(run_dir))
            if entry not in NOT_A_MODEL_FOLDER
            for name in checkpoint_files(osp.join(run_dir, entry))]


def has_checkpoint(run_dir):
    """Does ``run_dir`` hold a checkpoint to resume from (``--resume``)? A model folder
    with any checkpoint file counts; one whose pointer cannot be followed too (the
    resume then says why in one line, instead of training over it from scratch)."""
    return bool(run_checkpoint_files(run_dir))
