"""Databases layer: real-database scenarios, features, reflection and the corpus on SQLite, PostgreSQL and MariaDB."""
