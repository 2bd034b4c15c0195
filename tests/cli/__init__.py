"""CLI layer: end to end through the command line, the API, the pytest plugin and the framework recipes."""
