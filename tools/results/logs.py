"""A run's final test accuracy, read from the Dassl logs in its folder.

Dassl's evaluator prints a block ending in ``* accuracy: 71.2%``. A training log may
print such blocks for validation during training; only one printed after the
"Finish training" line (our engine, CoOp, MaPLe) or "Finished training" (KgCoOp's and
ProGrad's Dassl forks) is the final test result. An eval-only log has no training part,
so its last accuracy is the result.

A re-run in the same folder writes ``log.txt-<YYYY-mm-dd-HH-MM-SS>`` next to ``log.txt``
(Dassl's setup_logger never overwrites), so every log is read and the newest one that
holds a final result wins. Order comes from the file names, not modification times,
which copying a results tree can reset.
"""
import os
import re
from dataclasses import dataclass
from typing import Optional

ACCURACY_LINE = re.compile(r"^\s*\* accuracy: ([-+\d.eE]+)%\s*$")
FINISH_LINE = re.compile(r"^\s*Finish(ed)? training")
# Progress lines (``epoch [3/50] batch [5/5] ...``) and validation runs only occur
# while training: a log holding them but no finish line is an interrupted training.
TRAINING_LINE = re.compile(r"^epoch \[\d+/\d+\]|^Evaluate on the \*val\* set")


@dataclass
class LogResult:
    accuracy: Optional[float]
    problem: Optional[str] = None  # why there is no accuracy


def read_log(text):
    """The final accuracy a log's text reports (see the module docstring)."""
    training = finished = False
    accuracy = None
    for line in text.splitlines():
        if FINISH_LINE.match(line):
            finished = training = True
            accuracy = None  # results printed before the finish line were validation
        elif TRAINING_LINE.match(line):
            training = True
        else:
            match = ACCURACY_LINE.match(line)
            if match:
                accuracy = float(match.group(1))
    if training and not finished:
        return LogResult(None, "training did not finish")
    if accuracy is None:
        return LogResult(None, "no test result after 'Finish training'" if finished else "no test result")
    return LogResult(accuracy)


def log_files(run_dir):
    """``log.txt`` and its re-run siblings, oldest first."""
    names = [n for n in os.listdir(run_dir) if n == "log.txt" or n.startswith("log.txt-")]
    # "log.txt" is always the first run; suffixed names carry their start time.
    return [os.path.join(run_dir, n) for n in sorted(names, key=lambda n: (n != "log.txt", n))]


@dataclass
class RunResult:
    run_dir: str
    accuracy: Optional[float]
    log: Optional[str] = None  # the log the accuracy came from
    problem: Optional[str] = None


def read_run(run_dir):
    """The newest final result among a run folder's logs, or why there is none."""
    if not os.path.isdir(run_dir):
        return RunResult(run_dir, None, problem="missing")
    logs = log_files(run_dir)
    if not logs:
        return RunResult(run_dir, None, problem="no log.txt")
    problem = None
    for path in reversed(logs):
        with open(path, errors="replace") as f:
            result = read_log(f.read())
        if result.accuracy is not None:
            return RunResult(run_dir, result.accuracy, log=path)
        problem = problem or f"{result.problem} ({os.path.basename(path)})"
    return RunResult(run_dir, None, problem=problem)
