"""The permissions of taskcast (no table: an unmanaged model only carries them).

- ``taskcast.submit_run``: submit, retry and signal runs (views and the HTTP API);
- ``taskcast.cancel_run``: cancel the runs one sees;
- ``taskcast.view_all_runs``: see every run, not only one's own, and the counts, statistics,
  metrics and schedules.

Superusers have them all.
"""

from __future__ import annotations

from django.db import models


class Run(models.Model):
    """Stands for taskcast's runs in Django's permission system; runs live in taskcast's store."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("submit_run", "Can submit taskcast runs"),
            ("cancel_run", "Can cancel taskcast runs"),
            ("view_all_runs", "Can see every taskcast run"),
        ]
