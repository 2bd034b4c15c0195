"""Columns exactly as `create_all` builds them, on each database, and no false drift.

For each models module: (a) `metadata.create_all()` on a fresh database, (b) `generate` (no database) and
`upgrade` on another fresh database of the same server; both compared with SQLAlchemy's own inspector
(`helpers.inspect_schema`: types compiled for the database, nullability, defaults, collation, checks) must
be equal, and `schemashift diff` exits 0 on both, with nothing on stderr (no SQLAlchemy warnings).

`create_all` runs in a subprocess: the models register `@compiles` handlers, which must not leak into
this process.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import create_database, drop_database
from helpers import cli, execute, fetch_rows, inspect_schema, write_project
from schemashift.sqla.from_metadata import from_metadata
from schemashift.model.types import Type

VARIANT_IDENTITY = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "item"
    id = sa.Column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.Identity(), primary_key=True)
    name = sa.Column(sa.String(20), nullable=False)
"""

TEXT_SIZES = """
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Doc(Base):
    __tablename__ = "doc"
    id = sa.Column(sa.Integer, primary_key=True)
    body = sa.Column(sa.Text().with_variant(mysql.MEDIUMTEXT, "mysql"))
    huge = sa.Column(sa.Text().with_variant(mysql.LONGTEXT(collation="utf8mb4_bin"), "mysql"))
    code = sa.Column(sa.String(50).with_variant(sa.String(50, collation="utf8mb4_bin"), "mysql"))
"""

#: MariaDB only: MySQL's own types, character sets and collations, fractional seconds, native UUID.
MYSQL_TYPES = """
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Blob(Base):
    __tablename__ = "blob"
    id = sa.Column(sa.Integer, primary_key=True)
    long = sa.Column(mysql.LONGTEXT, nullable=False)
    medium = sa.Column(mysql.MEDIUMTEXT(charset="utf8mb4", collation="utf8mb4_unicode_ci"))
    tiny = sa.Column(mysql.TINYTEXT)
    legacy = sa.Column(mysql.VARCHAR(40, charset="latin1"))
    code = sa.Column(sa.String(50, collation="utf8mb4_bin"))
    ascii = sa.Column(mysql.VARCHAR(10, charset="ascii", collation="ascii_bin"))
    at = sa.Column(mysql.DATETIME(fsp=6))
    stamp = sa.Column(sa.TIMESTAMP, nullable=True)
    ref = sa.Column(sa.Uuid)
    old_ref = sa.Column(sa.Uuid(native_uuid=False))
    data = sa.Column(mysql.MEDIUMBLOB)
    chunk = sa.Column(sa.LargeBinary(65536))  # buildbot: BLOB(65536), which MariaDB makes a MEDIUMBLOB
"""

COMPILED = """
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.functions import FunctionElement


class GenerateUUID(FunctionElement):
    type = sa.String()
    name = "generate_uuid"
    inherit_cache = True


@compiles(GenerateUUID, "postgresql")
def _pg_uuid(element, compiler, **kw):
    return "gen_random_uuid()"


@compiles(GenerateUUID, "mysql")
def _my_uuid(element, compiler, **kw):
    return "(uuid())"


@compiles(GenerateUUID, "sqlite")
def _lite_uuid(element, compiler, **kw):
    return "(lower(hex(randomblob(16))))"


class utcnow(FunctionElement):
    type = sa.DateTime()
    inherit_cache = True


@compiles(utcnow, "postgresql")
def _pg_now(element, compiler, **kw):
    return "TIMEZONE('utc', CURRENT_TIMESTAMP)"


@compiles(utcnow, "mysql")
def _my_now(element, compiler, **kw):
    return "CURRENT_TIMESTAMP(6)"


@compiles(utcnow, "sqlite")
def _lite_now(element, compiler, **kw):
    return "CURRENT_TIMESTAMP"


@compiles(sa.DateTime, "mysql")
def _my_datetime(element, compiler, **kw):
    return "DATETIME(6)"


class LongText(sa.Text):  # dagster's pattern: its own Text, LONGTEXT on MySQL
    cache_ok = True


@compiles(LongText, "mysql")
def _my_long(element, compiler, **kw):
    return "LONGTEXT"


@compiles(sa.TIMESTAMP, "mysql")
def _my_timestamp(element, compiler, **kw):
    return "TIMESTAMP(6)"


@compiles(sa.Float, "mysql")  # dagster's patterns: 8-byte floats and a default with a generic form
def _my_float(element, compiler, **kw):
    return "FLOAT(53)"


@compiles(sa.FLOAT, "mysql")  # dagster's FLOAT(32): a precision over 24 makes a DOUBLE
def _my_upper_float(element, compiler, **kw):
    return "FLOAT(32)"


class now6(FunctionElement):
    type = sa.DateTime()
    inherit_cache = True


@compiles(now6, "mysql")
def _my_now6(element, compiler, **kw):
    return "CURRENT_TIMESTAMP(6)"


@compiles(now6)
def _now6(element, compiler, **kw):
    return "CURRENT_TIMESTAMP"


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "event"
    id = sa.Column(sa.Integer, primary_key=True)
    token = sa.Column(sa.String(36), server_default=GenerateUUID(), nullable=False)
    created = sa.Column(sa.DateTime, server_default=utcnow(), nullable=False)
    seen = sa.Column(sa.DateTime)
    body = sa.Column(LongText)
    stamp = sa.Column(sa.TIMESTAMP, nullable=True)
    started = sa.Column(sa.Float)
    ratio = sa.Column(sa.FLOAT)
    updated = sa.Column(sa.DateTime, server_default=now6())
"""

CHECKS_DEFAULTS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "task"
    id = sa.Column(sa.Integer, primary_key=True)
    done = sa.Column(sa.Boolean(create_constraint=True, name="done_bool"), nullable=False, server_default=sa.false())
    live = sa.Column(sa.Boolean, server_default=sa.true())
    state = sa.Column(sa.Enum("new", "old", name="state_t", native_enum=False, create_constraint=True))
    mood = sa.Column(sa.Enum("happy", "sad", name="mood_t", create_constraint=True))
    at = sa.Column(sa.TIMESTAMP(timezone=False), nullable=True)
    ref = sa.Column(sa.Uuid)
"""

MODELS = {
    "variant_identity": VARIANT_IDENTITY,
    "text_sizes": TEXT_SIZES,
    "compiled": COMPILED,
    "checks_defaults": CHECKS_DEFAULTS,
}


class Pair:
    """A database built by `create_all` and one built by schemashift from the same models, same server."""

    def __init__(self, backend: str, models: str, tmp: Path) -> None:
        self.backend = backend
        tmp.mkdir(parents=True, exist_ok=True)
        names = [f"ss_fid_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("a", "b")]
        self.names = names
        self.reference = create_database(backend, names[0], tmp)
        self.built = create_database(backend, names[1], tmp)
        self.project = write_project(tmp / "project", self.built, models)

    def create_all(self) -> None:
        code = (
            "import sys, sqlalchemy as sa; sys.path.insert(0, sys.argv[1]); from app.models import Base; "
            "e = sa.create_engine(sys.argv[2]); Base.metadata.create_all(e); e.dispose()"
        )
        subprocess.run([sys.executable, "-c", code, str(self.project), self.reference], check=True, timeout=120)

    def migrate(self) -> None:
        for args in (["generate", "-m", "models"], ["upgrade"]):
            result = cli(self.project, *args)
            assert result.stderr == "", result.stderr

    def drop(self) -> None:
        for name in self.names:
            drop_database(self.backend, name)


@pytest.fixture
def pair_of(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    made: list[Pair] = []

    def make(models: str) -> Pair:
        pair = Pair(backend, models, tmp_path)
        made.append(pair)
        pair.create_all()
        pair.migrate()
        return pair

    yield make
    for pair in made:
        pair.drop()


def assert_same_and_clean(pair: Pair) -> None:
    """Both databases look alike to SQLAlchemy's inspector; `diff` is clean and quiet on both."""
    assert inspect_schema(pair.built) == inspect_schema(pair.reference)
    for url in (pair.built, pair.reference):
        result = cli(pair.project, "diff", "--url", url, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""


@pytest.mark.parametrize("case", sorted(MODELS))
def test_schemashift_builds_what_create_all_builds(pair_of, case: str) -> None:  # type: ignore[no-untyped-def]
    assert_same_and_clean(pair_of(MODELS[case]))


def test_variant_identity_key_assigns_ids(pair_of) -> None:  # type: ignore[no-untyped-def]
    """BigInteger().with_variant(Integer, "sqlite") with Identity(): INTEGER PRIMARY KEY on SQLite, ids assigned."""
    pair = pair_of(VARIANT_IDENTITY)
    for url in (pair.built, pair.reference):
        execute(url, "INSERT INTO item (name) VALUES ('a')", "INSERT INTO item (name) VALUES ('b')")
        assert fetch_rows(url, "SELECT id, name FROM item ORDER BY id") == [(1, "a"), (2, "b")]


def test_variant_text_holds_long_values(pair_of) -> None:  # type: ignore[no-untyped-def]
    """Text().with_variant(MEDIUMTEXT, "mysql") holds more than TEXT's 64 KiB on MariaDB."""
    pair = pair_of(TEXT_SIZES)
    execute(pair.built, f"INSERT INTO doc (id, body) VALUES (1, '{'x' * 70000}')")
    assert fetch_rows(pair.built, "SELECT length(body) FROM doc") == [(70000,)]


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_mysql_types_collations_and_native_uuid(pair_of) -> None:  # type: ignore[no-untyped-def]
    pair = pair_of(MYSQL_TYPES)
    assert_same_and_clean(pair)
    columns = inspect_schema(pair.built)["blob"]["columns"]
    assert columns["ref"][0] == "UUID" and columns["old_ref"][0] == "CHAR(32)"  # as create_all on MariaDB 10.7+
    assert columns["long"][0] == "LONGTEXT" and columns["at"][0] == "DATETIME(6)"
    import sqlalchemy as sa

    blob = sa.Table("blob", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("long", sa.Text),
                    sa.Column("ref", sa.Uuid))
    value = uuid.uuid4()
    engine = sa.create_engine(pair.built, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:  # SQLAlchemy writes and reads the native UUID column
        conn.execute(blob.insert().values(id=1, long="x", ref=value))
        assert conn.execute(sa.select(blob.c.ref)).scalar_one() == value
    engine.dispose()


@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_diff_names_the_differing_variant_and_collation(pair_of) -> None:  # type: ignore[no-untyped-def]
    """A database with plain TEXT/VARCHAR where the models want MEDIUMTEXT and a collation: diff says so."""
    pair = pair_of(TEXT_SIZES)
    execute(pair.built, "ALTER TABLE doc MODIFY body TEXT", "ALTER TABLE doc MODIFY code VARCHAR(50)")
    result = cli(pair.project, "diff", check=False)
    assert result.returncode == 1
    assert "mediumtext" in result.stdout and "utf8mb4_bin" in result.stdout, result.stdout


def test_model_conversion_keeps_per_database_forms() -> None:
    """No database needed: the neutral model keeps each database's type, default and CHECK."""
    namespace: dict[str, object] = {}
    exec(CHECKS_DEFAULTS, namespace)  # noqa: S102 - our own test models
    table = from_metadata(namespace["Base"].metadata).table("task")  # type: ignore[attr-defined]
    done = table.column("done")
    assert done.default == "false" and done.default_on("sqlite") == "0" and done.default_on("postgresql") == "false"
    assert table.column("at").type == Type("datetime", variant="timestamp")
    where = {check.sql: check.only_on for check in table.checks}
    assert where == {"done IN (0, 1)": ("mariadb", "mysql", "sqlite"), "state IN ('new', 'old')": (), "mood IN ('happy', 'sad')": ("sqlite",)}
    namespace = {}
    exec(TEXT_SIZES, namespace)  # noqa: S102
    body = from_metadata(namespace["Base"].metadata).table("doc").column("body")  # type: ignore[attr-defined]
    assert body.type.on("mysql") == Type("text", variant="mediumtext") and body.type.on("sqlite") == Type("text")


SEEDED = """
import sqlalchemy as sa
from schemashift.sqla.from_metadata import from_metadata

md = sa.MetaData()
sa.Table(
    "t", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Integer),
    sa.Column("b", sa.Boolean(create_constraint=True)),
    sa.CheckConstraint("a > 0", name="c1"), sa.CheckConstraint("a < 100", name="c2"), sa.CheckConstraint("a <> 5"),
    sa.Column("s", sa.Enum("x", "y", name="s_t", native_enum=False, create_constraint=True)),
)
print(from_metadata(md).table("t").checks)
"""


def test_checks_keep_their_creation_order_whatever_the_hash_seed() -> None:
    """CHECKs come in the order create_all emits them (MariaDB numbers unnamed ones by it), for any PYTHONHASHSEED."""
    import os

    outputs = {
        subprocess.run([sys.executable, "-c", SEEDED], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(outputs) == 1
    text = outputs.pop()
    assert text.index("a > 0") < text.index("a < 100") < text.index("a <> 5")


EVOLVE_BEFORE = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    id = sa.Column(sa.Integer, primary_key=True)
    body = sa.Column(sa.Text)
    done = sa.Column(sa.Boolean, nullable=False, server_default=sa.text("false"))
"""

EVOLVE_AFTER = """
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    id = sa.Column(sa.Integer, primary_key=True)
    body = sa.Column(sa.Text().with_variant(mysql.MEDIUMTEXT, "mysql"))
    done = sa.Column(sa.Boolean(create_constraint=True, name="note_done"), nullable=False, server_default=sa.false())
"""


def test_per_database_forms_added_later_keep_rows(backend: str, tmp_path: Path) -> None:
    """A variant, a per-database default and a Boolean CHECK added to existing columns: each database gets
    exactly what create_all of the new models builds, rows are kept, and `downgrade -1` goes back."""
    from helpers import set_models

    before, after = Pair(backend, EVOLVE_BEFORE, tmp_path / "before"), Pair(backend, EVOLVE_AFTER, tmp_path / "after")
    try:
        before.create_all()
        after.create_all()
        project = before.project
        before.migrate()
        execute(before.built, "INSERT INTO note (id, body) VALUES (1, 'kept')")
        set_models(project, EVOLVE_AFTER)
        generated = cli(project, "generate", "-m", "per-database forms")
        assert generated.stderr == ""
        cli(project, "upgrade")
        assert inspect_schema(before.built) == inspect_schema(after.reference)
        assert cli(project, "diff", check=False).returncode == 0
        assert fetch_rows(before.built, "SELECT id, body FROM note") == [(1, "kept")]
        cli(project, "downgrade", "-1")
        assert inspect_schema(before.built) == inspect_schema(before.reference)
        assert fetch_rows(before.built, "SELECT id, body FROM note") == [(1, "kept")]
    finally:
        before.drop()
        after.drop()


WARNS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"
    id = sa.Column(sa.String(36), primary_key=True)


class Child(Base):  # mlflow's pattern: SQLAlchemy's SQLite reflection warns about it
    __tablename__ = "child"
    id = sa.Column(sa.Integer, primary_key=True)
    parent_id = sa.Column(sa.String(36), sa.ForeignKey("parent.id", ondelete="CASCADE"))
    __table_args__ = (sa.ForeignKeyConstraint(["parent_id"], ["parent.id"], name="fk_child_parent_id",
                                              ondelete="CASCADE"),)


# the SQLite layout no longer makes SQLAlchemy's reflection warn about the pair above: warn for sure
import warnings  # noqa: E402
warnings.warn(sa.exc.SAWarning("a warning SQLAlchemy raises while the models load"))
"""


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlalchemy_warnings_stay_off_stderr(fresh_db: str, tmp_path: Path) -> None:
    """generate, upgrade and diff print no SQLAlchemy warning (`--debug` lets them through)."""
    project = write_project(tmp_path / "project", fresh_db, WARNS)
    for args in (["generate", "-m", "models"], ["upgrade"], ["diff"]):
        result = cli(project, *args, check=False)
        assert result.returncode in (0, 1) and "Warning" not in result.stderr, result.stderr
    assert "SAWarning" in cli(project, "diff", "--debug", check=False).stderr


def test_a_narrower_form_on_one_database_counts_as_narrowing() -> None:
    """Text -> Text().with_variant(String(50), "mysql") loses long values on MySQL: its values are kept first."""
    from schemashift.planning.backups import narrows

    text = Type("text")
    assert narrows(text, text.evolve(dialects=(("mysql", Type("string", length=50)),)))
    assert not narrows(text, text.evolve(dialects=(("mysql", Type("text", variant="mediumtext")),)))
    assert not narrows(Type("integer"), Type("bigint", dialects=(("sqlite", Type("integer")),)))
    assert narrows(Type("text", variant="mediumtext"), Type("text"))  # MEDIUMTEXT -> TEXT on MariaDB
    assert narrows(Type("text", dialects=(("mysql", Type("text", variant="longtext")),)), Type("text"))
    assert narrows(Type("binary", variant="mediumblob"), Type("binary"))


@pytest.mark.parametrize("case", sorted(MODELS))
def test_per_database_forms_are_stable_between_runs(case: str, tmp_path: Path) -> None:
    """A second `generate` finds nothing to do and `check` passes: the forms convert the same every time."""
    project = write_project(tmp_path / "project", f"sqlite:///{tmp_path / 'db.sqlite'}", MODELS[case])
    cli(project, "generate", "-m", "models")
    assert "No changes" in cli(project, "generate", "-m", "again").stdout
    assert cli(project, "check").returncode == 0


ENUM_VARIANT = """
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase

MOOD = postgresql.ENUM("happy", "sad", name="mood_v")


class Base(DeclarativeBase):
    pass


class A(Base):
    __tablename__ = "a"
    id = sa.Column(sa.Integer, primary_key=True)
    mood = sa.Column(sa.String(10).with_variant(MOOD, "postgresql"))


class B(Base):
    __tablename__ = "b"
    id = sa.Column(sa.Integer, primary_key=True)
    mood = sa.Column(sa.String(10).with_variant(MOOD, "postgresql"))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)  # create_all fails on MySQL itself
def test_enum_only_on_postgresql_via_variant(pair_of, backend: str) -> None:  # type: ignore[no-untyped-def]
    """A native enum that only PostgreSQL gets (with_variant): its type is created once, dropped with its last user
    (kept rows hold its values as text)."""
    pair = pair_of(ENUM_VARIANT)
    assert_same_and_clean(pair)
    cli(pair.project, "downgrade", "base")
    assert inspect_schema(pair.built) == {}
    if backend == "postgresql":
        assert fetch_rows(pair.built, "SELECT count(*) FROM pg_type WHERE typname = 'mood_v'") == [(0,)]
