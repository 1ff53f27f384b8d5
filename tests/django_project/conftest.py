"""A real Django project (``tests.django_project``) served by a real uvicorn, with pytest-django's
database (a SQLite file both processes open), and Chromium from tests/dashboard.

Every test here is a plain function (Playwright's sync API holds the main thread's event loop;
see tests/dashboard/conftest.py), and Django's guard against ORM calls beside a running loop is
lifted for the test process only: Playwright's loop is not one the ORM runs in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

from ..dashboard.conftest import browser, page  # noqa: F401  (fixtures used here)
from ..uvicorn_server import Uvicorn, uvicorn_server

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

TOKEN = "service-token"


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[Uvicorn]:
    """``uvicorn tests.django_project.asgi:application`` on the test database."""
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
        "TASKCAST_DJANGO_DB": str(connection.settings_dict["NAME"]),
        "TASKCAST_STORE": f"sqlite:///{tmp_path / 'taskcast.db'}",
    }
    with uvicorn_server(tmp_path, "tests.django_project.asgi:application", env) as started:
        yield started


SignIn = Callable[..., httpx.Client]


@pytest.fixture
def sign_in(server: Uvicorn) -> Iterator[SignIn]:
    """``sign_in(name, *permissions)``: a user with those taskcast permissions and an HTTP
    client carrying their session cookie."""
    clients: list[httpx.Client] = []

    def make(name: str, *permissions: str) -> httpx.Client:
        user = User.objects.create_user(name, password="pw")
        for codename in permissions:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="taskcast", codename=codename)
            )
        django_client = Client()
        django_client.force_login(user)
        session = django_client.cookies["sessionid"].value
        client = httpx.Client(base_url=server.url, timeout=30, cookies={"sessionid": session})
        client.user = user  # type: ignore[attr-defined]
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def service(server: Uvicorn) -> Iterator[httpx.Client]:
    """An HTTP client with the service token (sees and may do everything)."""
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client
