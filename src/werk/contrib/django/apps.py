"""The Django app of Werk's task backend: it brings the ``werk_worker`` command."""

from __future__ import annotations

from django.apps import AppConfig


class WerkConfig(AppConfig):
    """``werk.contrib.django`` in ``INSTALLED_APPS``."""

    name = "werk.contrib.django"
    label = "werk"
    verbose_name = "Werk"
