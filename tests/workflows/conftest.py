"""Workflow tests run, like the engine's, against the memory store and a real SQLite file."""

from tests.engine.conftest import app, make_app, store_url

__all__ = ["app", "make_app", "store_url"]
