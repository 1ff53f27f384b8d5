"""Tasks that ship with taskcast. ``register_demo_tasks(app)`` adds the ``demo.*`` tasks."""

from .demo import register_demo_tasks

__all__ = ["register_demo_tasks"]
