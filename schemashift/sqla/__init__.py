"""Converters between the neutral model and SQLAlchemy (`MetaData`, types)."""
