"""tests/fixtures/warm_python.py: a command run warm sees and returns what `python3` gives it."""
import os
import subprocess
import sys

import pytest

from tests.fixtures.warm_python import WarmPython

SCRIPT = """\
import os, sys
print("argv", sys.argv)
print("cwd", os.getcwd())
print("path0", sys.path[0])
print("env", os.environ.get("WARM_TEST_VALUE"))
print("name", __name__)
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ.get("WARM_TEST_STATUS", "0")))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    warm = WarmPython.start(str(tmp_path_factory.mktemp("warm") / "bin"), preload=["json"])
    yield warm
    warm.stop()


def run(python, args, cwd, **env):
    return subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))


@pytest.mark.parametrize("status", ["0", "3"])
def test_a_script_sees_its_argv_folder_environment_and_streams(server, tmp_path, status):
    script = tmp_path / "sub" / "show.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    args = ["sub/show.py", "a b", "--flag"]
    real = run(sys.executable, args, tmp_path, WARM_TEST_VALUE="x y", WARM_TEST_STATUS=status)
    warm = run(server.python, args, tmp_path, WARM_TEST_VALUE="x y", WARM_TEST_STATUS=status)
    assert (warm.returncode, warm.stdout, warm.stderr) == (real.returncode, real.stdout, real.stderr)
    assert real.returncode == int(status) and "argv ['sub/show.py', 'a b', '--flag']" in real.stdout


def test_code_modules_and_uncaught_exceptions_behave_as_in_python(server, tmp_path):
    show = "import sys; print(sys.argv, sys.path[0] == '', [k for k in globals() if k[:2] != '__']); sys.exit('bye')"
    for args in (["-c", show, "x"],  # argv, path, a namespace of its own, a message as exit status
                 ["-m", "json.tool", "--help"],
                 ["-c", "raise ValueError('boom')"]):
        real = run(sys.executable, args, tmp_path)
        warm = run(server.python, args, tmp_path)
        assert warm.returncode == real.returncode, args
        assert warm.stdout.replace("json.tool", "") == real.stdout.replace("json.tool", ""), args
        assert warm.stderr.splitlines()[-1:] == real.stderr.splitlines()[-1:], args


def test_what_changes_imports_runs_on_the_real_interpreter(server, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "only_here.py").write_text("VALUE = 7\n")
    code = ["-c", "import only_here; print(only_here.VALUE)"]
    assert run(server.python, code, tmp_path, PYTHONPATH=str(extra)).stdout == "7\n"
    unbuffered = run(server.python, ["-u", "-c", "import sys; print(sys.argv)"], tmp_path)
    assert unbuffered.stdout == "['-c']\n"
    isolated = run(server.python, ["-I", "-c", "import sys; print(sys.flags.isolated)"], tmp_path)
    assert isolated.stdout == "1\n"  # an option the server cannot apply: the real interpreter ran
