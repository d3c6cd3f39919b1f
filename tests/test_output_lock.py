"""Issue #15.2: one run per output folder. The folder's lock is held for the whole run
(training and evaluation alike); a second run stops with one line naming the holder's
pid, and a holder killed with SIGKILL leaves the folder free."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import DEMO_DATASET_CONFIG, TINY_COOP_CONFIG

# Another process holding the lock as a run does: an flock on the folder's lock file.
HOLDER = r"""
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.write(f"pid {os.getpid()} on a test host\n"); f.flush()
print("locked", flush=True)
time.sleep(120)
"""


def flags(data_root, output_dir, *extra):
    return ["--root", str(data_root), "--trainer", "CoOp", "--seed", "1",
            "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG,
            "--output-dir", str(output_dir), *extra]


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of tmp_path/run."""
    from engine.output_lock import LOCK_FILE

    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / LOCK_FILE)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.mark.parametrize("extra", [[], ["--eval-only"]])
def test_a_second_run_on_a_locked_folder_stops_naming_the_holder(tmp_path, capsys, holder, extra):
    from engine.launch import main

    out, proc = holder
    assert main(flags(tmp_path / "data", out, *extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"pid {proc.pid} " in err and str(out) in err and "in use by another run" in err
    assert os.listdir(out) == [".run.lock"], "the refused run wrote nothing"


def test_a_killed_holder_leaves_the_folder_free(holder):
    from engine.output_lock import OutputDirLock, OutputDirLocked

    out, proc = holder
    with pytest.raises(OutputDirLocked):
        OutputDirLock(out).acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with OutputDirLock(out) as lock:  # the kernel dropped the dead process's lock
        assert f"pid {os.getpid()} " in open(lock.path).read()
    assert not os.path.exists(lock.path), "released: the lock file is removed"


@pytest.mark.real_dassl  # the lock is launch code both engines share
def test_the_lock_is_held_while_the_run_works_and_released_after(tmp_path, capsys, monkeypatch):
    import engine.launch as launch
    from engine.output_lock import OutputDirLock, OutputDirLocked
    from engine.user_errors import UserError

    out = tmp_path / "run"
    seen = {}

    def build_trainer(cfg):  # the run is under way: a second claim must fail
        try:
            OutputDirLock(out).acquire()
            seen["second"] = "acquired"
        except OutputDirLocked as error:
            seen["second"] = str(error)
        raise UserError("stop here")

    monkeypatch.setattr(launch, "build_trainer", build_trainer)
    monkeypatch.setattr(launch, "setup_logger", lambda *_: None)
    assert launch.main(flags(tmp_path / "data", out)) == 2
    assert f"pid {os.getpid()} " in seen["second"]
    assert "stop here" in capsys.readouterr().err
    with OutputDirLock(out):  # released when the run ended (here: in an error)
        pass


@pytest.mark.parametrize("error, words", [
    (PermissionError(13, "Permission denied", "/x"), ["Permission denied (/x)", "choose another --output-dir"]),
    (OSError(28, "No space left on device"), ["No space left on device while writing", ".run.lock"]),
])
def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, error, words):
    import engine.output_lock as output_lock
    from engine.user_errors import is_user_error

    def makedirs(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(output_lock.os, "makedirs", makedirs)
    with pytest.raises(Exception) as caught:
        output_lock.OutputDirLock(tmp_path / "new").acquire()
    assert is_user_error(caught.value), repr(caught.value)
    for word in words:
        assert word in str(caught.value)
