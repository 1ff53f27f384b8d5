"""taskcast: run long-lived async tasks, stream every event to any number of clients, stop cleanly."""

__version__ = "0.1.0"
