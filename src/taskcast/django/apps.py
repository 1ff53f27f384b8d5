"""The Django app: ``"taskcast.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TaskcastConfig(AppConfig):
    """Makes the project's App from ``settings.TASKCAST`` and imports each installed app's
    ``tasks`` module, where ``@taskcast.django.task`` registers the tasks."""

    name = "taskcast.django"
    label = "taskcast"
    verbose_name = "taskcast"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from .conf import get_app

        get_app()
        autodiscover_modules("tasks")
