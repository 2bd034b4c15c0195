"""Running plans against a database: executor, version table and journal, locks, repair, catalogue fingerprints,
fast paths."""
