"""Every test marked ``real_dassl`` runs again on a real, unmodified Dassl.pytorch.

The engine is chosen once, when ``engine`` is first imported, so these tests cannot switch
to Dassl inside this process: this test starts ``pytest -m real_dassl`` in a process whose
``engine`` is the real Dassl (``../shared/dassl``; CI has it) and fails with its output.
A fresh clone has no ``../shared``: then it skips, saying so.
"""
import subprocess
import time

import pytest

import engine
from tests.fixtures.real_dassl import (
    BY_HAND, REPO_ROOT, files_with_real_dassl_tests, real_dassl_command, real_dassl_env,
    why_no_real_dassl,
)

SUMMARY = "real-Dassl run ({command}, {seconds:.0f} s): {summary}"


@pytest.mark.slow
def test_every_real_dassl_test_passes_on_the_real_engine(tmp_path):
    reason = why_no_real_dassl()
    if reason:
        pytest.skip(reason)
    if engine.BACKEND == "dassl":
        pytest.skip("this process already runs on Dassl, so the real_dassl tests ran in it")
    assert files_with_real_dassl_tests(), "no test file marks a test real_dassl"

    # One torch thread: these tiny models gain nothing from more, and on a busy machine
    # idle pool threads spinning for work made the run several times slower.
    env = real_dassl_env()
    env.setdefault("OMP_NUM_THREADS", "1")
    command = real_dassl_command(tmp_path / "basetemp")
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    output = proc.stdout + proc.stderr
    lines = output.strip().splitlines()
    summary = SUMMARY.format(command=BY_HAND, seconds=time.monotonic() - started,
                             summary=lines[-1] if lines else "no output")
    if proc.returncode != 0:
        pytest.fail(f"{summary}\n{output[-12000:]}", pytrace=False)
    # A test that skips there ran on no engine at all (e.g. Dassl was not selected).
    if "skipped" in lines[-1] or " passed" not in lines[-1]:
        pytest.fail(f"{summary}: every real_dassl test must run there\n{output[-12000:]}",
                    pytrace=False)
    print(summary)  # shown with -rP or -s: what ran there and how long it took
