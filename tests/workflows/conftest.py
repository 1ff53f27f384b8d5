"""Workflow tests run against the memory store, a real SQLite file and a real Redis (one
process, whose App is both the API node and the worker: children and dependents go through the
shared queue and come back to it). What is about several processes is in tests/redis."""

from tests.engine.conftest import app, make_app, store_url

__all__ = ["app", "make_app", "store_url"]
