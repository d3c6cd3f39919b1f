"""Issue #15.10: a full disk while writing a checkpoint, the log or the demo data ends
the run in one line naming the path and "no space left"; what was written before stays.

The disk is "filled" by making the write itself raise OSError(ENOSPC), through the real
atomic writer, logger and demo generator."""
import errno
import os
import shutil

import pytest
import torch

from tests.fixtures.one_epoch_run import checkpoint_of, flags, run_main

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.real_dassl
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_last_one(
        demo_data_root, trained_run, tmp_path, capsys, monkeypatch):
    import engine.bundled.utils.checkpoint as checkpoint

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = checkpoint_of(run).read_bytes()
    real_atomic_write = checkpoint._atomic_write

    def atomic_write(fpath, write_to):
        if not fpath.endswith("model.pth.tar-2"):
            return real_atomic_write(fpath, write_to)

        def write_until_full(f):
            f.write(b"half a checkpoint")
            raise NO_SPACE

        return real_atomic_write(fpath, write_until_full)

    monkeypatch.setattr(checkpoint, "_atomic_write", atomic_write)
    status = run_main(flags(demo_data_root, run, "--resume", opts=["OPTIM.MAX_EPOCH", "2"]))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    target = run / "prompt_learner" / "model.pth.tar-2"
    assert err.startswith(f"error: No space left on device while writing {target}"), err
    assert not target.exists()
    assert checkpoint_of(run).read_bytes() == before
    assert (run / "prompt_learner" / "checkpoint").read_text().strip() == "model.pth.tar-1"
    assert not [name for name in os.listdir(run / "prompt_learner") if name.endswith(".tmp")]
    torch.load(checkpoint_of(run), weights_only=True)  # still loads


def test_a_full_disk_while_logging_is_one_line_naming_the_log(tmp_path, capsys):
    from engine.bundled.utils.logger import Logger
    from engine.launch import one_line
    from engine.user_errors import is_user_error

    logger = Logger(str(tmp_path / "log.txt"), console=open(os.devnull, "w"))
    logger.write("first line\n")
    logger.flush()

    class FullFile:
        def write(self, _):
            raise NO_SPACE

        def close(self):
            pass

    logger.file = FullFile()
    with pytest.raises(Exception) as caught:
        logger.write("second line\n")
    assert is_user_error(caught.value)
    assert one_line(caught.value).startswith(
        f"No space left on device while writing {tmp_path / 'log.txt'}")
    logger.write("the console goes on\n")  # no second failure while the run stops
    assert (tmp_path / "log.txt").read_text() == "first line\n"


def test_a_full_disk_while_generating_the_demo_is_one_line(tmp_path, monkeypatch):
    import datasets.demo as demo
    from engine.launch import one_line
    from engine.user_errors import is_user_error

    def write_images(folder):
        os.makedirs(os.path.join(folder, "images"))
        open(os.path.join(folder, "images", "a.png"), "wb").close()
        raise NO_SPACE

    monkeypatch.setattr(demo, "_write_images", write_images)
    with pytest.raises(Exception) as caught:
        demo.generate_demo_dataset(str(tmp_path))
    assert is_user_error(caught.value)
    assert one_line(caught.value).startswith(
        f"No space left on device while writing {tmp_path / 'demo'}")
    assert os.listdir(tmp_path) == [], "the half-written temp folder is removed"
