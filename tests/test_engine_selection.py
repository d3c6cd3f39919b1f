"""engine.select_backend: which Dassl API implementation the project runs on."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import ENGINE_ENV_VAR, select_backend

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "requested, available, expected",
    [
        ("auto", True, "dassl"),
        ("auto", False, "bundled"),
        ("bundled", True, "bundled"),
        ("bundled", False, "bundled"),
        ("dassl", True, "dassl"),
        ("", False, "bundled"),  # an empty value means auto
        (" Dassl ", True, "dassl"),  # case and surrounding blanks are ignored
        ("BUNDLED", True, "bundled"),
    ],
)
def test_select_backend_modes(requested, available, expected):
    assert select_backend(requested, dassl_available=available) == expected


def test_forced_dassl_without_dassl_raises_with_install_hint():
    with pytest.raises(ImportError, match=f"{ENGINE_ENV_VAR}=dassl.*pip install"):
        select_backend("dassl", dassl_available=False)


@pytest.mark.parametrize("bad", ["torch", "dassl2", "yes"])
def test_invalid_mode_is_rejected(bad):
    with pytest.raises(ValueError, match="auto, bundled, dassl"):
        select_backend(bad, dassl_available=True)


def test_mode_defaults_to_the_environment_variable(monkeypatch):
    monkeypatch.setenv(ENGINE_ENV_VAR, "bundled")
    assert select_backend(dassl_available=True) == "bundled"
    monkeypatch.setenv(ENGINE_ENV_VAR, "nonsense")
    with pytest.raises(ValueError):
        select_backend(dassl_available=True)
    monkeypatch.delenv(ENGINE_ENV_VAR)
    assert select_backend(dassl_available=True) == "dassl"
    assert select_backend(dassl_available=False) == "bundled"


def _import_engine(mode):
    env = dict(os.environ, **{ENGINE_ENV_VAR: mode})
    code = "import engine; print(engine.BACKEND)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_forced_bundled_mode_imports_the_bundled_engine():
    proc = _import_engine("bundled")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bundled"


@pytest.mark.skipif(engine.dassl_is_installed(), reason="Dassl is importable here")
def test_without_dassl_the_bundled_engine_is_used():
    assert engine.BACKEND == "bundled"
    assert engine.TrainerX.__module__.startswith("engine.bundled")


@pytest.mark.skipif(engine.dassl_is_installed(), reason="Dassl is importable here")
def test_forced_dassl_mode_fails_at_import_without_dassl():
    proc = _import_engine("dassl")
    assert proc.returncode != 0
    assert "RPP_ENGINE=dassl but 'import dassl' fails" in proc.stderr
