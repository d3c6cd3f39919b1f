"""Checkpoint files: Dassl's layout and messages, but safe and crash-proof.

* Saving is atomic (temp file in the same directory, fsync, ``os.replace``), for the
  checkpoint and for the ``checkpoint`` pointer file, so a kill mid-save leaves the
  previous files intact. Temp names start with "." so ``listdir_nohidden`` skips them.
* Loading always uses ``torch.load(weights_only=True)`` and never falls back to
  unsafe unpickling; a file it cannot read raises one-line ``CheckpointError``, a
  missing one ``MissingCheckpoint`` and one whose weights do not fit the module
  ``CheckpointMismatch``.
* Which file to deploy or resume from is ``engine.checkpoint_files``'s rule
  (``find_checkpoint``, ``resume_checkpoint``).

Every trainer reads and writes checkpoints through these functions, on a real Dassl too
(``engine.bundled.checkpointing``).
"""
import os
import os.path as osp
import re
import shutil
import warnings
from collections import OrderedDict

import numpy as np
import torch

from engine.checkpoint_files import (
    BEST_NAME, POINTER_FILE, CheckpointFileError, epoch_checkpoint_name, resume_checkpoint,
)
from engine.stale_temp_files import temp_name
from engine.user_errors import UserError, reporting_disk_full, user_error

from .tools import mkdir_if_missing

user_error(CheckpointFileError)  # a pointer that cannot be followed: one line, exit 2


@user_error  # train.py prints it as one line and exits with status 2
class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be loaded safely (message is one line)."""


class MissingCheckpoint(UserError, FileNotFoundError):
    """The checkpoint a run asks for (``--model-dir``, ``--load-epoch``) is not there."""


class CheckpointMismatch(UserError):
    """A checkpoint whose keys or shapes do not fit the configured model."""


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------

def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    """Write ``state`` to ``save_dir/(model_name or model.pth.tar-{epoch})``; return the path.

    ``state`` holds ``state_dict``, ``epoch``, ``optimizer``, ``scheduler`` and
    ``val_result``; keep every value plain data (tensors, numbers, str, lists,
    dicts) so that ``load_checkpoint`` can read it back with weights_only=True.
    """
    mkdir_if_missing(save_dir)
    state = {key: _plain_scalar(value) for key, value in state.items()}
    if remove_module_from_keys:
        state["state_dict"] = _strip_module_prefix(state["state_dict"])
    fname = model_name or epoch_checkpoint_name(state["epoch"])
    fpath = osp.join(save_dir, fname)
    _atomic_write(fpath, lambda f: torch.save(state, f))
    print(f"Checkpoint saved to {fpath}")
    # The pointer is replaced only after the checkpoint is complete, so it never
    # names a missing or half-written file.
    _atomic_write(osp.join(save_dir, POINTER_FILE), lambda f: f.write(f"{fname}\n".encode()))
    if is_best:
        best_fpath = osp.join(save_dir, BEST_NAME)
        with open(fpath, "rb") as src:
            _atomic_write(best_fpath, lambda f: shutil.copyfileobj(src, f))
        print(f'Best checkpoint saved to "{best_fpath}"')
    return fpath


def _plain_scalar(value):
    # A numpy scalar (e.g. an np.float64 val_result) would make weights_only loading fail.
    return value.item() if isinstance(value, np.generic) else value


def _strip_module_prefix(state_dict):
    return OrderedDict(
        (key[len("module."):] if key.startswith("module.") else key, value)
        for key, value in state_dict.items()
    )


def _atomic_write(fpath, write_to):
    """Call ``write_to(binary_file)`` on a temp file, then move it over ``fpath``."""
    directory = osp.dirname(fpath) or "."
    tmp_path = osp.join(directory, temp_name(osp.basename(fpath)))
    # os.open with 0o666 honours the umask (mkstemp would force 0600).
    try:
        # A full disk is one line naming the file; the file it would replace is untouched.
        with reporting_disk_full(fpath):
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                write_to(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_path, fpath)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); harmless where unsupported."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------

def load_checkpoint(fpath):
    """Load a checkpoint safely (``weights_only=True``; to CPU when there is no GPU).

    Raises ValueError for None, FileNotFoundError for a missing file and
    CheckpointError for a truncated, corrupt or unsafe (foreign pickled objects) file.
    """
    if fpath is None:
        raise ValueError("File path is None")
    fpath = str(fpath)
    if not osp.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    if osp.isdir(fpath):
        raise CheckpointError(f'Cannot load checkpoint "{fpath}": it is a directory, not a file')
    map_location = None if torch.cuda.is_available() else "cpu"
    try:
        return torch.load(fpath, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear line
        raise CheckpointError(f'Cannot load checkpoint "{fpath}": {_explain_load_error(e)}') from e


def _explain_load_error(error):
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())  # one line, no ANSI
    unsafe_global = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe_global:
        return (
            f"it contains a pickled Python object ({unsafe_global.group(1)}) that safe "
            "loading (torch.load weights_only=True) refuses; re-save it with plain "
            "tensors, numbers, lists and dicts"
        )
    if "Weights only load failed" in text:
        detail = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        reason = f" ({detail.group(1).strip()})" if detail and detail.group(1).strip() else ""
        return (
            f"safe loading (torch.load weights_only=True) refused it{reason}; it is not a "
            "torch.save file of plain tensors and numbers"
        )
    if isinstance(error, EOFError):
        return "the file is empty or truncated"
    if "zip archive" in text or "central directory" in text:
        first_sentence = text.split(". ")[0]
        return f"the file is truncated or corrupt ({first_sentence})"
    return f"the file is not a readable torch checkpoint ({type(error).__name__}: {text})"


def load_state_strictly(module, state_dict, source, hint=""):
    """``module.load_state_dict(state_dict)``, but a misfit is one ``CheckpointMismatch``
    line naming ``source``, the keys and shapes (and ``hint``: what to check)."""
    from models.state_dict_check import state_dict_problems  # (models imports engine)

    problems = state_dict_problems(module.state_dict(), state_dict)
    if problems:
        raise CheckpointMismatch(
            f"Checkpoint {source} does not fit the configured model ({'; '.join(problems)})"
            + (f"; {hint}" if hint else "")
        )
    with torch.no_grad():
        module.load_state_dict(state_dict, strict=True)


def load_weights(module, fpath, ignored_keys=(), hint="", layout=None, resuming=False):
    """Load the ``state_dict`` of checkpoint ``fpath`` into ``module`` strictly, leaving
    out keys whose last part is in ``ignored_keys``; return the whole checkpoint.

    Refused in one line each: a file that is no model checkpoint (``resuming``: one
    without its ``epoch`` too), one written under another prompt ``layout`` (the keys
    that define the prompts' shape and meaning, ``Checkpointing.prompt_layout``; a
    checkpoint that recorded none, e.g. an official CoOp one, is not checked) and one
    holding NaN or infinite weights.
    """
    checkpoint = load_checkpoint(fpath)
    require_checkpoint_structure(checkpoint, fpath, resuming)
    state_dict = {key: value for key, value in checkpoint["state_dict"].items()
                  if key.split(".")[-1] not in ignored_keys}
    check_prompt_layout(checkpoint.get("prompt_layout"), layout, fpath, module, state_dict)
    require_finite(state_dict, fpath)
    load_state_strictly(module, state_dict, fpath, hint)
    return checkpoint


def require_checkpoint_structure(checkpoint, fpath, resuming=False):
    """A dict with a ``state_dict`` of tensors (and, to resume, an integer ``epoch``)."""
    wanted = 'a dict with "state_dict" (name -> tensor)' + (' and "epoch"' if resuming else "")
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'Checkpoint "{fpath}" holds {_describe(checkpoint)}, not a model checkpoint '
            f"({wanted})")
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, dict) or not all(
            isinstance(value, torch.Tensor) for value in state_dict.values()):
        found = "no state_dict" if state_dict is None else f"a state_dict that is {_describe(state_dict)}"
        raise CheckpointError(
            f'Checkpoint "{fpath}" has {found}, so it is not a model checkpoint ({wanted})')
    epoch = checkpoint.get("epoch")
    if resuming and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise CheckpointError(
            f'Checkpoint "{fpath}" has no epoch count ("epoch": {epoch!r}), so a run cannot '
            "be resumed from it")


def _describe(value):
    if isinstance(value, torch.Tensor):
        return f"a bare tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        tensors = sum(isinstance(v, torch.Tensor) for v in value.values())
        return f"a dict of {len(value)} entries ({tensors} of them tensors)"
    return f"a {type(value).__name__}"


def _layout_slot(key):
    """Node keys match across trainer nodes (a KgCoOp run reads CoOp's N_CTX)."""
    return re.sub(r"^TRAINER\.[^.]+\.", "TRAINER.*.", key)


def check_prompt_layout(recorded, current, fpath, module=None, state_dict=None):
    """CheckpointMismatch naming every key whose recorded value differs from this run's
    (and how the weights then misfit ``module``, if they do)."""
    if not recorded or not current or not isinstance(recorded, dict):
        return
    recorded = {_layout_slot(key): value for key, value in recorded.items()}
    differing = [
        f"{key} {recorded[_layout_slot(key)]!r} there, {value!r} here"
        for key, value in current.items()
        if _layout_slot(key) in recorded and recorded[_layout_slot(key)] != value
    ]
    if differing:
        from models.state_dict_check import state_dict_problems  # (models imports engine)

        problems = state_dict_problems(module.state_dict(), state_dict) if module is not None else []
        misfit = f" ({'; '.join(problems)})" if problems else ""
        raise CheckpointMismatch(
            f"Checkpoint {fpath} was trained with another prompt layout ({'; '.join(differing)}); "
            f"run with the values it was trained with{misfit}")


def require_finite(state_dict, fpath):
    """CheckpointError naming the tensors that hold NaN or infinite values."""
    bad = [key for key, value in state_dict.items()
           if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise CheckpointError(
            f"Checkpoint {fpath} holds non-finite values (NaN or inf) in {shown}; its run "
            "diverged: load an earlier epoch (--load-epoch) or retrain with a lower OPTIM.LR")


def restore_checkpoint(fpath, model, optimizer=None, scheduler=None, hint="", layout=None):
    """Put checkpoint ``fpath`` back into ``model`` (strictly), ``optimizer`` and
    ``scheduler`` with Dassl's messages; return the checkpoint. A checkpoint of another
    optimizer type (OPTIM.NAME) is one CheckpointMismatch line."""
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_weights(model, fpath, hint=hint, layout=layout, resuming=True)
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        saved_type = checkpoint.get("optimizer_type")
        if saved_type is not None and saved_type != type(optimizer).__name__:
            raise CheckpointMismatch(
                f"Checkpoint {fpath} was written with optimizer {saved_type}, but this run "
                f"uses {type(optimizer).__name__} (OPTIM.NAME); resume with the optimizer it "
                "was trained with, or start a new run")
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointMismatch(
                f"Checkpoint {fpath} holds an optimizer state that does not fit this run's "
                f"{type(optimizer).__name__} ({' '.join(str(error).split())}); check OPTIM.NAME"
            ) from error
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    return checkpoint


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    """Restore the checkpoint a resume of ``fdir`` continues from (``resume_checkpoint``:
    the one its pointer names, else the newest); return its stored epoch.

    The stored epoch is already ``epoch + 1``, i.e. the next 0-based epoch to run.
    """
    path = resume_checkpoint(fdir)
    if path is None:
        raise MissingCheckpoint(f"No checkpoint to resume from in {fdir}")
    start_epoch = restore_checkpoint(path, model, optimizer, scheduler)["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def load_pretrained_weights(model, weight_path):
    """Copy every weight whose name and shape match into ``model``; report the rest."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint
    model_dict = model.state_dict()
    matched, discarded = OrderedDict(), []
    for key, value in _strip_module_prefix(state_dict).items():
        if key in model_dict and model_dict[key].size() == value.size():
            matched[key] = value
        else:
            discarded.append(key)
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn(f'Cannot load {weight_path} (check the key names manually)')
        return
    print(f"Successfully loaded pretrained weights from {weight_path}")
    if discarded:
        print(f"Layers discarded due to unmatched keys or size: {discarded}")
