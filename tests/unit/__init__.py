"""Unit layer: tests that need no database server (pure code, offline SQL, SQLite files, the CLI on SQLite)."""
