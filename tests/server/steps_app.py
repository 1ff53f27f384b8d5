"""The App of ``taskcast serve --app tests.server.steps_app:app`` in the durable steps tests."""

import taskcast

from ..durable_app import register

app = taskcast.App(grace=0.0, shutdown_timeout=2.0)
register(app)
