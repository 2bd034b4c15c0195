"""Migrating at start-up in a Flask app: `schemashift.upgrade(engine)` in the application factory.

Each worker process that builds the app calls `upgrade`; the migration lock makes
one of them apply the pending migrations while the others wait, then find the
database at head and go on — so ``gunicorn -w 8`` on several hosts is safe.
With ``gunicorn --preload`` the factory runs once, in the master, before the
workers fork. A `SchemashiftError` (a partly migrated database, an edited
migration, the lock wait timing out) stops the start-up with a one-line message.

Run it (``schemashift.toml``, the models and ``migrations/`` next to this file,
as ``schemashift init`` writes them)::

    pip install flask gunicorn '/path/to/schemashift[mysql]'   # a clone: not on PyPI yet
    DATABASE_URL=mysql+pymysql://app@db.internal/app gunicorn -w 8 'flask_app:create_app()'
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, Response, jsonify

import schemashift

HERE = Path(__file__).resolve().parent


def create_app() -> Flask:
    """The app, created only once its database is at head."""
    logging.basicConfig(level=logging.INFO)  # `upgrade` reports on the `schemashift` logger
    engine = sa.create_engine(os.environ.get("DATABASE_URL", f"sqlite:///{HERE / 'app.db'}"))
    schemashift.upgrade(engine, config=HERE / "schemashift.toml")  # waits for the lock if another process migrates

    app = Flask(__name__)
    app.extensions["engine"] = engine

    @app.get("/health")
    def health() -> Response:
        """Answers once the schema is at head."""
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return jsonify(status="ok")

    return app
