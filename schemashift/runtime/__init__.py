"""Running plans against a database: executor, version table and journal, repair, fast paths."""
