"""MySQL and MariaDB: compilation, reflection, locks."""
