"""taskcast.testing: a pytest plugin that makes async tests leak-free and deterministic."""
