#!/usr/bin/env python
"""The Django test project's manage.py (Django 6.1, Werk's task backend)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
