"""SQLite: compilation, table rebuilds, reflection."""
