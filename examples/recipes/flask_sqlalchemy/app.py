"""Flask-SQLAlchemy: the application factory upgrades `db.engine` before returning the app.

    DATABASE_URL=postgresql+psycopg://app@db/app flask --app app run
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

import schemashift

HERE = Path(__file__).resolve().parent
db = SQLAlchemy()  # `models = "app:db"`: schemashift reads `db.metadata`


class Note(db.Model):  # type: ignore[name-defined,misc]
    """A note."""

    id = db.Column(db.Integer, primary_key=True)
    text = db.Column(db.String(200), nullable=False)


def create_app() -> Flask:
    """The application, its database at head."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", f"sqlite:///{HERE / 'app.db'}")
    db.init_app(app)
    with app.app_context():
        schemashift.upgrade(db.engine, config=HERE / "schemashift.toml")

    @app.post("/notes")
    def add_note():  # type: ignore[no-untyped-def]
        note = Note(text=request.args["text"])
        db.session.add(note)
        db.session.commit()
        return jsonify(id=note.id)

    @app.get("/notes")
    def notes():  # type: ignore[no-untyped-def]
        return jsonify([note.text for note in db.session.scalars(db.select(Note).order_by(Note.id))])

    return app
