"""``python manage.py taskcast_worker [taskcast worker options]``: run the project's tasks
from the shared store (``settings.TASKCAST["STORE"]``: redis://), without HTTP."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the project's taskcast tasks from the shared (Redis) store; see taskcast worker."

    def run_from_argv(self, argv: list[str]) -> None:
        # Every option is taskcast worker's (--help too): none is Django's to parse.
        self.handle(options=argv[2:])

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("options", nargs=argparse.REMAINDER, help="taskcast worker options")

    def handle(self, *args: Any, **options: Any) -> None:
        from taskcast.cli import main

        main(["worker", "--app", "taskcast.django.runtime:app", "--no-demo", *options["options"]])
