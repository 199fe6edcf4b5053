"""The Django test project (tests/djangoproject/project) passes on Django 6.1.

Django 6 needs Python 3.12+, while Werk supports 3.11: the project runs in a virtual
environment of its own (``.venv-django`` at the repository root, reused while its Django
version and Werk's dependencies stay the same) on the newest Python 3.12+ found (the
``WERK_DJANGO_PYTHON`` variable, ``python3.13``/``python3.12`` on PATH, or pyenv's
versions). No such interpreter skips the test locally and fails it in CI.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Path(__file__).resolve().parent / "project"
VENV = ROOT / ".venv-django"
DJANGO = "django>=6.1,<6.2"


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def find_python() -> str | None:
    """Return a Python 3.12+ interpreter, the newest found, or ``None``."""
    candidates = [os.environ.get("WERK_DJANGO_PYTHON", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.13", "python3.12")]
    home = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{home}/versions/3.1[2-9]*/bin/python"), reverse=True)
    found = [(v, c) for c in candidates if c and (v := _version(c)) and v >= (3, 12)]
    return max(found)[1] if found else None


def _stamp(python: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{python} {_version(python)} {DJANGO}".encode())
    return digest.hexdigest()


def ensure_venv(python: str) -> Path:
    """Create (or reuse) the Django virtualenv with Django 6.1 and Werk (editable)."""
    stamp = VENV / ".werk-stamp"
    wanted = _stamp(python)
    if stamp.exists() and stamp.read_text() == wanted:
        return VENV / "bin" / "python"
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, DJANGO, "-e", str(ROOT)], check=True, timeout=900)
    stamp.write_text(wanted)
    return VENV / "bin" / "python"


def django_python() -> Path:
    """Return the Django virtualenv's Python (skip locally, fail in CI, without 3.12+)."""
    python = find_python()
    require(python is not None, "no Python 3.12+ found for the Django 6.1 test project")
    assert python is not None
    return ensure_venv(python)


@pytest.mark.timeout(1200)
def test_the_django_project_passes_on_django_6_1() -> None:
    venv_python = django_python()
    version = subprocess.run(
        [str(venv_python), "-c", "import django; print(django.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version.startswith("6.1"), version
    env = {k: v for k, v in os.environ.items() if k not in ("WERK_URL", "DJANGO_SETTINGS_MODULE")}
    done = subprocess.run(
        [str(venv_python), "manage.py", "test", "shop", "-v", "2", "--noinput"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 18 tests" in done.stderr and "OK" in done.stderr, done.stderr


CHECK_WITHOUT_TASK_IMPORTS = """
import django
from django.conf import settings
from django.core.management import call_command

settings.configure(
    INSTALLED_APPS=["werk.contrib.django"],
    TASKS={"default": {"BACKEND": "werk.contrib.django.WerkBackend",
                       "QUEUES": ["not ok"], "OPTIONS": {"RESULT_TTL": -5}}},
)
django.setup()
call_command("check")
"""


@pytest.mark.timeout(1200)
def test_manage_py_check_reports_bad_options_when_no_module_imports_django_tasks() -> None:
    # docs/howto/django-tasks.md: `python manage.py check` reports werk.E001 and werk.E002,
    # also in a project where nothing imports django.tasks before the checks run
    done = subprocess.run(
        [str(django_python()), "-c", CHECK_WITHOUT_TASK_IMPORTS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    assert "werk.E001" in done.stderr and "werk.E002" in done.stderr, done.stderr
