"""Settings of the Django test project: one app (shop), SQLite, and Werk as the TASKS
backend. ``SHOP_DB`` names the database file; the end-to-end tests point a worker process
at the test database with it. ``WERK_URL`` names the Werk server; ``SHOP_DEBUG=1`` sets
``DEBUG`` (Django's default logging then prints its own lines on stderr)."""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only-not-secret"
DEBUG = os.environ.get("SHOP_DEBUG") == "1"  # a worker test turns on Django's console logging
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "config.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "werk.contrib.django",
    "shop",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {"timeout": 20},
        # A file, not memory: the worker process of the end-to-end tests shares it.
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"werk-shop-{os.getpid()}.sqlite3")},
    }
}

TASKS = {
    "default": {
        "BACKEND": "werk.contrib.django.WerkBackend",
        "QUEUES": ["default", "orders", "reports"],
        "OPTIONS": {"RESULT_TTL": 3600, "RESERVE_FOR": 120},
    }
}
