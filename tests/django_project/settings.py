"""A small Django project using taskcast, served by a real uvicorn in these tests.

The database is SQLite: ``TASKCAST_DJANGO_DB`` names its file (the test server is given the
test database pytest-django made); taskcast's store is ``TASKCAST_STORE``.
"""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.django_project.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "taskcast.django",
    "tests.django_project.shop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TASKCAST_DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
        "TEST": {
            "NAME": os.path.join(tempfile.gettempdir(), f"taskcast-django-{os.getpid()}.sqlite3")
        },
    }
}

TASKCAST = {
    "STORE": os.environ.get("TASKCAST_STORE", "memory://"),
    "TOKEN": "service-token",
    "GRACE": 0.0,
    "SHUTDOWN_TIMEOUT": 1.0,
}
