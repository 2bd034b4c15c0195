"""Plans as data before anything runs: steps, data protection, offline SQL, lint."""
