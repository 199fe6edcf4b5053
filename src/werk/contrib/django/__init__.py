"""Werk as the engine of Django's task framework (``django.tasks``, Django 6.1+).

Add ``"werk.contrib.django"`` to ``INSTALLED_APPS`` and a backend to ``TASKS``::

    TASKS = {"default": {"BACKEND": "werk.contrib.django.WerkBackend",
                         "QUEUES": ["default", "mail"],
                         "OPTIONS": {"URL": "tcp://localhost:7419", "RESULT_TTL": 86400}}}

then run workers with ``python manage.py werk_worker``. :mod:`.backend` pushes tasks as
Werk jobs and reads their results, :mod:`.jobs` maps between the two, :mod:`.worker` runs
them, :mod:`.options` reads and checks the OPTIONS; docs/howto/django-tasks.md is the
how-to. Python 3.12+ (Django 6 needs it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werk.contrib.django.backend import WerkBackend

__all__ = ["WerkBackend"]


def __getattr__(name: str) -> Any:
    # Lazy, so that INSTALLED_APPS can name this package before Django's settings load.
    if name == "WerkBackend":
        from werk.contrib.django.backend import WerkBackend

        return WerkBackend
    raise AttributeError(name)
