"""PostgreSQL: compilation, reflection, locks."""
