"""The Django app of Werk's task backend: it brings the ``werk_worker`` command."""

from __future__ import annotations

from django.apps import AppConfig


class WerkConfig(AppConfig):
    """``werk.contrib.django`` in ``INSTALLED_APPS``."""

    name = "werk.contrib.django"
    label = "werk"
    verbose_name = "Werk"

    def ready(self) -> None:
        """Import ``django.tasks``: Django registers its task backends' system checks
        (``werk.E001``, ``werk.E002``) only when that package is imported, which a project
        whose task modules load lazily never does before ``manage.py check``."""
        import django.tasks  # noqa: F401
