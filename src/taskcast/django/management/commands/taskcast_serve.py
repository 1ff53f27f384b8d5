"""``python manage.py taskcast_serve [taskcast serve options]``: serve the project's App (its
tasks, its store from ``settings.TASKCAST``) as ``taskcast serve`` does, on its own port, with
``settings.TASKCAST["TOKEN"]`` as its token. To serve it inside the project instead, mount it in
``asgi.py`` (``taskcast.django.asgi``)."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the project's taskcast App, API and dashboard; see taskcast serve."

    def run_from_argv(self, argv: list[str]) -> None:
        # Every option is taskcast serve's (--help too): none is Django's to parse.
        self.handle(options=argv[2:])

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("options", nargs=argparse.REMAINDER, help="taskcast serve options")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskcast.cli import main
        from taskcast.django.conf import options as settings

        token = settings()["TOKEN"]
        given = list(options["options"])
        if token and "--token" not in given:
            given = ["--token", token, *given]
        main(["serve", "--app", "taskcast.django.runtime:app", "--no-demo", *given])
