"""The neutral schema model: tables, columns, constraints, types. No SQLAlchemy, no database."""
