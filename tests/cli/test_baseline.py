"""`baseline`, `stamp`, Alembic adoption and `exclude`/`include_object`, on SQLite, PostgreSQL and MariaDB.

Databases built by `create_all`, by a small Alembic history run to head with
Alembic's command API, and by hand with drift: each is brought under
schemashift (`baseline`, or `stamp` on a second copy), then `status` exits 0, a
no-op `upgrade` runs nothing, changed models are reconciled by `generate` +
`upgrade`, `diff` exits 0 and every pre-existing row is still there.
"""

from __future__ import annotations

import sys
import textwrap
import types
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import create_database, drop_database
from helpers import cli, execute, fetch_rows, scalar, set_models, write_project

V1 = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), index=True)
    born: Mapped[int | None] = mapped_column(sa.Integer, comment="year of birth")
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    rating: Mapped[float | None] = mapped_column(sa.Numeric(5, 2), server_default="1.50")
    __table_args__ = (sa.CheckConstraint("born > 0", name="ck_author_born"),
                      sa.UniqueConstraint("name", "born", name="uq_author_name_born"))

class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id", ondelete="CASCADE"))
'''

V2 = V1 + '''
    pages: Mapped[int | None] = mapped_column(sa.Integer)

class Review(Base):
    __tablename__ = "review"
    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(sa.ForeignKey("book.id"), index=True)
    stars: Mapped[int] = mapped_column(sa.SmallInteger)
'''

ROWS = (
    "INSERT INTO author (id, name, born) VALUES (1, 'Ada', 1815)",
    "INSERT INTO author (id, name, born) VALUES (2, 'Alan', 1912)",
    "INSERT INTO book (id, title, author_id) VALUES (1, 'Notes', 1)",
)


def _models(source: str) -> sa.MetaData:
    """The MetaData of models `source`, imported as a throw-away module."""
    module = types.ModuleType(f"baseline_models_{uuid.uuid4().hex[:8]}")
    sys.modules[module.__name__] = module
    try:
        exec(compile(textwrap.dedent(source), "<models>", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module.Base.metadata  # type: ignore[attr-defined,no-any-return]


def _create_all(url: str, source: str = V1) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    _models(source).create_all(engine)
    engine.dispose()


def _rows(url: str) -> list[tuple[object, ...]]:
    return fetch_rows(url, "SELECT a.id, a.name, a.born, b.title FROM author a LEFT JOIN book b ON b.author_id = a.id "
                           "ORDER BY a.id")


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _reconcile(project: Path, url: str, rows: list[tuple[object, ...]]) -> None:
    """status 0, no-op upgrade, then models V2: generate + upgrade, diff 0, rows kept."""
    status = cli(project, "status")
    assert "Live schema matches the migrations." in status.stdout, status.stdout
    assert "Nothing to do" in cli(project, "upgrade").stdout
    set_models(project, V2)
    generated = cli(project, "generate", "-m", "pages and reviews", "--no-rename")
    assert "create table review" in generated.stdout and "add column book.pages" in generated.stdout, generated.stdout
    cli(project, "upgrade")
    diff = cli(project, "diff", check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert cli(project, "status").returncode == 0
    assert cli(project, "verify").returncode == 0
    assert _rows(url) == rows


@pytest.fixture
def second_db(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Another throw-away database on the same backend (a second environment's copy)."""
    name = f"ss_baseline2_{uuid.uuid4().hex[:8]}"
    url = create_database(backend, name, tmp_path)
    yield url
    drop_database(backend, name)


# -- create_all -------------------------------------------------------------------


def test_baseline_of_create_all_database(fresh_db: str, tmp_path: Path) -> None:
    _create_all(fresh_db)
    execute(fresh_db, *ROWS)
    rows = _rows(fresh_db)
    project = write_project(tmp_path / "proj", fresh_db, V1)
    result = cli(project, "baseline", "-m", "adopt production")
    assert "Recorded" in result.stdout and "(baseline)" in result.stdout
    files = sorted((project / "migrations").glob("0001_*.py"))
    assert len(files) == 1
    assert "CreateTable" in files[0].read_text()
    assert cli(project, "diff").returncode == 0  # nothing differs: the models built this database
    assert "No changes" in cli(project, "generate", "-m", "nothing").stdout
    history = cli(project, "history", "--applied").stdout
    assert "outcome=baseline" in history
    assert cli(project, "manifest", "--check").returncode == 0
    _reconcile(project, fresh_db, rows)


def test_stamp_second_copy_and_refusals(fresh_db: str, second_db: str, tmp_path: Path) -> None:
    _create_all(fresh_db)
    _create_all(second_db)
    execute(second_db, *ROWS)
    project = write_project(tmp_path / "proj", fresh_db, V1)
    cli(project, "baseline")
    again = cli(project, "baseline", check=False)  # migrations exist now
    assert again.returncode == 2 and "migrations already exist" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    rows_exist = cli(project, "baseline", "--after", "HEAD", check=False)  # version rows exist
    assert rows_exist.returncode == 2 and "already has 1 row(s)" in rows_exist.stderr
    assert len(list((project / "migrations").glob("*.py"))) == 1

    rows = _rows(second_db)
    stamped = cli(project, "stamp", "head", "--url", second_db)
    assert "(stamp)" in stamped.stdout
    status = cli(project, "status", "--url", second_db)
    assert "Live schema matches the migrations." in status.stdout and "Pending: 0" in status.stdout
    again = cli(project, "stamp", "head", "--url", second_db, check=False)
    assert again.returncode == 2 and "already has" in again.stderr
    (project / "schemashift.toml").write_text((project / "schemashift.toml").read_text().replace(fresh_db, second_db))
    _reconcile(project, second_db, rows)


def test_stamp_refuses_drift_and_force_is_recorded(fresh_db: str, second_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", fresh_db, V1)
    cli(project, "generate", "-m", "v1")  # no database needed
    _create_all(second_db)
    execute(second_db, "CREATE INDEX ix_book_title ON book (title)", *ROWS)
    before = _tables(second_db)
    refused = cli(project, "stamp", "head", "--url", second_db, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "create index" not in refused.stdout  # stamp lists what the migrations lack: a drop of the extra index
    assert "drop index ix_book_title on book" in refused.stdout
    assert "not stamped" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert _tables(second_db) == before  # untouched: no version table either
    forced = cli(project, "stamp", "head", "--force", "--url", second_db)
    assert "WARNING" in forced.stdout
    history = fetch_rows(second_db, "SELECT outcome, error FROM schemashift_version_history")
    assert history[0][0] == "stamp-forced" and "drop index ix_book_title" in str(history[0][1])
    assert scalar(second_db, "SELECT count(*) FROM author") == 2


def test_baseline_after_head_adopts_on_top(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", fresh_db, V1)
    cli(project, "generate", "-m", "v1")
    _create_all(fresh_db, V2)
    execute(fresh_db, *ROWS)
    refused = cli(project, "baseline", check=False)
    assert refused.returncode == 2 and "--after HEAD" in refused.stderr
    assert "schemashift_version" not in _tables(fresh_db)
    set_models(project, V2)  # the models describe the database being adopted
    adopted = cli(project, "baseline", "--after", "HEAD", "-m", "adopt v2")
    assert "Wrote" in adopted.stdout
    assert len(list((project / "migrations").glob("0002_*.py"))) == 1
    assert "Live schema matches the migrations." in cli(project, "status").stdout
    assert cli(project, "diff").returncode == 0
    assert "No changes" in cli(project, "generate", "-m", "nothing").stdout
    assert scalar(fresh_db, "SELECT count(*) FROM schemashift_version") == 2


def test_baseline_refuses_an_empty_database(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", fresh_db, V1)
    result = cli(project, "baseline", check=False)
    assert result.returncode == 2 and "holds no tables" in result.stderr
    assert not list((project / "migrations").glob("*.py"))


# -- by hand, with drift ----------------------------------------------------------------

ID_COLUMN = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "SERIAL PRIMARY KEY",
             "mysql": "INTEGER AUTO_INCREMENT PRIMARY KEY"}


def test_baseline_of_hand_built_database_with_drift(backend: str, fresh_db: str, tmp_path: Path) -> None:
    ident = ID_COLUMN[backend]
    execute(
        fresh_db,
        f"CREATE TABLE author (id {ident}, name VARCHAR(40) NOT NULL, born INTEGER, "
        "active BOOLEAN DEFAULT TRUE NOT NULL, rating NUMERIC(5, 2) DEFAULT 1.50, "
        "CONSTRAINT uq_author_name_born UNIQUE (name, born), CONSTRAINT ck_author_born CHECK (born > 0))",
        f"CREATE TABLE book (id {ident}, title VARCHAR(200) NOT NULL, author_id INTEGER NOT NULL, "
        "FOREIGN KEY (author_id) REFERENCES author (id) ON DELETE CASCADE)",
        "CREATE INDEX ix_book_title_old ON book (title)",  # only in the database
        *ROWS,
    )  # drift: name is VARCHAR(40), ix_author_name is missing, ix_book_title_old is extra
    rows = _rows(fresh_db)
    project = write_project(tmp_path / "proj", fresh_db, V1)
    cli(project, "baseline")
    assert "Live schema matches the migrations." in cli(project, "status").stdout
    assert "Nothing to do" in cli(project, "upgrade").stdout
    diff = cli(project, "diff", check=False)
    assert diff.returncode == 1
    for expected in ("column author.name differs: the database has", "the models have index ix_author_name on author",
                     "the database has index ix_book_title_old on book that the models do not"):
        assert expected in diff.stdout, diff.stdout
    generated = cli(project, "generate", "-m", "reconcile", "--no-rename")
    assert "drop index ix_book_title_old on book" in generated.stdout, generated.stdout
    cli(project, "upgrade")
    diff = cli(project, "diff", check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert _rows(fresh_db) == rows
    _reconcile(project, fresh_db, rows)


# -- Alembic ------------------------------------------------------------------------------

ALEMBIC_ENV = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.",
                            poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
'''

ALEMBIC_FIRST = '''
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None


def upgrade():
    op.create_table(
        "author",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("born", sa.Integer, comment="year of birth"),
        sa.Column("active", sa.Boolean, server_default=sa.true(), nullable=False),
        sa.CheckConstraint("born > 0", name="ck_author_born"),
        sa.UniqueConstraint("name", "born", name="uq_author_name_born"),
    )
    op.create_index("ix_author_name", "author", ["name"])


def downgrade():
    op.drop_table("author")
'''

ALEMBIC_SECOND = '''
import sqlalchemy as sa
from alembic import op

revision = "b2"
down_revision = "a1"


def upgrade():
    op.add_column("author", sa.Column("rating", sa.Numeric(5, 2), server_default="1.50"))
    op.create_table(
        "book",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("author_id", sa.Integer, sa.ForeignKey("author.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_book_title", "book", ["title"])  # not in the models: reconciled later


def downgrade():
    op.drop_table("book")
    op.drop_column("author", "rating")
'''


def _alembic_project(project: Path, url: str) -> None:
    (project / "alembic" / "versions").mkdir(parents=True)
    (project / "alembic" / "env.py").write_text(ALEMBIC_ENV)
    (project / "alembic" / "script.py.mako").write_text("")
    (project / "alembic" / "versions" / "a1_first.py").write_text(ALEMBIC_FIRST)
    (project / "alembic" / "versions" / "b2_second.py").write_text(ALEMBIC_SECOND)
    (project / "alembic.ini").write_text(f"[alembic]\nscript_location = alembic\nsqlalchemy.url = {url}\n")


def _alembic_upgrade(project: Path, url: str, target: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(project / "alembic.ini"))
    config.set_main_option("script_location", str(project / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, target)


def test_alembic_project_baseline_stamp_and_refusal(backend: str, fresh_db: str, second_db: str,
                                                    tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", fresh_db, V1)
    _alembic_project(project, fresh_db)
    _alembic_upgrade(project, fresh_db, "a1")
    refused = cli(project, "baseline", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "not at the head of its Alembic scripts (b2)" in refused.stderr
    assert "schemashift_version" not in _tables(fresh_db)
    assert not list((project / "migrations").glob("*.py"))

    _alembic_upgrade(project, fresh_db)
    execute(fresh_db, *ROWS)
    rows = _rows(fresh_db)
    adopted = cli(project, "baseline", "-m", "from alembic")
    assert "Alembic revision b2 recorded" in adopted.stdout
    message = fetch_rows(fresh_db, "SELECT message, outcome FROM schemashift_version_history")
    assert message == [("from alembic [alembic b2]", "baseline")]
    assert "alembic_version" not in (project / "migrations").glob("0001_*.py").__next__().read_text()
    status = cli(project, "status")
    assert "alembic_version" not in status.stdout and "Live schema matches" in status.stdout
    diff = cli(project, "diff", check=False)
    assert diff.returncode == 1 and "the database has index ix_book_title on book that the models do not" in diff.stdout \
        and "alembic" not in diff.stdout

    _alembic_upgrade(project, second_db)  # the second environment's copy: stamp, and drop alembic_version
    execute(second_db, *ROWS)
    stamped = cli(project, "stamp", "head", "--url", second_db, "--drop-alembic-version")
    assert "alembic_version dropped" in stamped.stdout
    assert "alembic_version" not in _tables(second_db)
    assert "Live schema matches" in cli(project, "status", "--url", second_db).stdout

    _reconcile(project, fresh_db, rows)
    assert scalar(fresh_db, "SELECT version_num FROM alembic_version") == "b2"  # left alone


def test_alembic_dir_option_and_missing_scripts(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", fresh_db, V1)
    _alembic_project(project, fresh_db)
    _alembic_upgrade(project, fresh_db)
    (project / "alembic.ini").rename(project / "elsewhere.ini")
    missing = cli(project, "baseline", check=False)
    assert missing.returncode == 2 and "--alembic-dir" in missing.stderr
    cli(project, "baseline", "--alembic-dir", str(project / "alembic"))
    assert "Live schema matches" in cli(project, "status").stdout


def test_alembic_not_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from schemashift.services.baseline import alembic_heads
    from schemashift.errors import ConfigError

    for name in ("alembic", "alembic.config", "alembic.script"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match="pip install alembic"):
        alembic_heads(tmp_path, [])


# -- exclude / include_object ---------------------------------------------------------------

HOOK = '''
seen = []

def include(obj, name, kind, reflected, compare_to):
    seen.append(kind)
    return not (kind == "table" and name == "hooked")
'''


def test_exclude_patterns_and_include_object(fresh_db: str, tmp_path: Path) -> None:
    _create_all(fresh_db)
    execute(fresh_db, "CREATE TABLE legacy_orders (id INTEGER PRIMARY KEY, total INTEGER)",
            "CREATE TABLE hooked (id INTEGER PRIMARY KEY)", "CREATE TABLE scratch (id INTEGER PRIMARY KEY)",
            "INSERT INTO legacy_orders (id, total) VALUES (1, 10)", *ROWS)
    project = write_project(tmp_path / "proj", fresh_db, V1, extra_config='exclude = ["scratch"]\n')
    config = (project / "schemashift.toml").read_text()
    (project / "schemashift.toml").write_text(
        'exclude = ["legacy_*"]\ninclude_object = "app.hooks:include"\n' + config)
    (project / "app" / "hooks.py").write_text(HOOK)
    cli(project, "baseline")
    text = next((project / "migrations").glob("0001_*.py")).read_text()
    assert "legacy_orders" not in text and "hooked" not in text and "scratch" not in text
    assert cli(project, "diff").returncode == 0
    assert "Live schema matches" in cli(project, "status").stdout
    assert "No changes" in cli(project, "generate", "-m", "nothing").stdout
    set_models(project, V2)
    cli(project, "generate", "-m", "v2")
    cli(project, "upgrade")
    assert cli(project, "diff").returncode == 0
    assert {"legacy_orders", "hooked", "scratch"} <= _tables(fresh_db)  # never dropped
    assert scalar(fresh_db, "SELECT total FROM legacy_orders") == 10
    assert "Live schema matches" in cli(project, "status").stdout
    (project / "schemashift.toml").write_text(config.replace('exclude = ["scratch"]\n', ""))  # no filter now
    status = cli(project, "status", check=False)  # the fast path must not trust a fingerprint taken under the filter
    assert "the database has table legacy_orders that the migrations do not" in status.stdout, status.stdout
    assert "the database has table scratch that the migrations do not" in status.stdout, status.stdout


def test_exclude_config_is_checked(tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", "sqlite:///x.db", V1)
    config = (project / "schemashift.toml").read_text()
    (project / "schemashift.toml").write_text('exclude = "legacy_*"\n' + config)
    result = cli(project, "status", check=False)
    assert result.returncode == 2 and "exclude must be a list" in result.stderr


# -- fidelity: what the baseline migration builds on a fresh database ------------------------

RICH = '''
import enum
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class State(enum.Enum):
    draft = "draft"
    live = "live"

ticket_seq = sa.Sequence("ticket_seq", start=100, metadata=Base.metadata)

class Ticket(Base):
    __tablename__ = "ticket"
    __table_args__ = (sa.Index("ix_ticket_code_desc", sa.text("code DESC")),
                      sa.CheckConstraint("qty >= 0", name="ck_ticket_qty"), {"comment": "support tickets"})
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(20), unique=True, comment="public code")
    state: Mapped[State] = mapped_column(sa.Enum(State, name="ticket_state"), server_default="draft")
    qty: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    price: Mapped[float | None] = mapped_column(sa.Numeric(10, 2))
    opened: Mapped[object] = mapped_column(sa.DateTime, server_default=sa.func.now())
    note: Mapped[str | None] = mapped_column(sa.Text)
'''


def test_baseline_migration_rebuilds_the_schema_exactly(fresh_db: str, second_db: str, tmp_path: Path) -> None:
    _create_all(fresh_db, RICH)
    execute(fresh_db, "INSERT INTO ticket (code, qty) VALUES ('T-1', 3)")
    project = write_project(tmp_path / "proj", fresh_db, RICH)
    cli(project, "baseline")
    assert cli(project, "diff").returncode == 0
    assert "No changes" in cli(project, "generate", "-m", "nothing").stdout
    assert "Nothing to do" in cli(project, "upgrade").stdout
    cli(project, "upgrade", "--url", second_db)  # a fresh database built from the baseline migration
    result = cli(project, "diff", "--url", second_db, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert scalar(fresh_db, "SELECT qty FROM ticket WHERE code = 'T-1'") == 3


# -- the filter itself ----------------------------------------------------------------------------


def test_object_filter_patterns_and_hook_arguments() -> None:
    from schemashift.autodetect.filters import object_filter
    from schemashift.model.schema import Column, Index, Schema, Sequence, Table
    from schemashift.model.types import Type

    def table(name: str, schema: str | None = None) -> Table:
        return Table(name, (Column("id", Type("integer")), Column("tmp", Type("text"))),
                     indexes=(Index("ix_tmp", ("tmp",)),), schema=schema)

    live = Schema.of([table("users"), table("legacy_x"), table("log", "audit"), table("alembic_version")],
                     [Sequence("legacy_seq"), Sequence("users_seq")])
    models = Schema.of([table("users")])
    calls: list[tuple[str | None, str, bool, bool]] = []

    def hook(obj, name, kind, reflected, compare_to):  # type: ignore[no-untyped-def]
        calls.append((name, kind, reflected, compare_to is not None))
        return kind != "column" or name != "tmp"

    keep = object_filter(["legacy_*", "audit.*"])
    keep = type(keep)(keep.patterns, hook)
    kept = keep.apply(live, reflected=True, other=models)
    assert sorted(kept.tables) == ["users"] and sorted(kept.sequences) == ["users_seq"]
    assert kept.tables["users"].column_names == ("id",)
    assert ("users", "table", True, True) in calls and ("tmp", "column", True, True) in calls
    assert ("ix_tmp", "index", True, True) in calls and ("users_seq", "sequence", True, False) in calls
    assert not any(name in ("legacy_x", "log", "alembic_version") for name, *_ in calls)
    assert object_filter().apply(models, reflected=False) is models


def test_stamp_a_middle_revision_then_upgrade(fresh_db: str, tmp_path: Path) -> None:
    project = write_project(tmp_path / "proj", fresh_db, V1)
    cli(project, "generate", "-m", "v1")
    set_models(project, V2)
    cli(project, "generate", "-m", "v2", "--no-rename")
    first = next((project / "migrations").glob("0001_*.py")).read_text().split('revision = "')[1][:12]
    _create_all(fresh_db, V1)
    execute(fresh_db, *ROWS)
    rows = _rows(fresh_db)
    refused = cli(project, "stamp", "head", check=False)  # the database is at v1, not at head
    assert refused.returncode == 2 and "create table review" in refused.stdout
    cli(project, "stamp", first[:8])
    assert "Pending: 1" in cli(project, "status", check=False).stdout  # exit 1: pending
    cli(project, "upgrade")
    assert cli(project, "diff").returncode == 0
    assert _rows(fresh_db) == rows


def test_tables_the_models_add_later_need_no_change(fresh_db: str, tmp_path: Path) -> None:
    """A table baselined without a model counterpart is written in the form models declare where that is the
    same table here (autoincrement key, no SERIAL default, no generated names or spelled-out RESTRICT)."""
    project = write_project(tmp_path / "proj", fresh_db, V1)
    _create_all(fresh_db, V2)
    cli(project, "baseline")
    set_models(project, V2)
    assert "No changes" in cli(project, "generate", "-m", "nothing").stdout
    assert cli(project, "diff").returncode == 0


COLLATION = {"postgresql": '"C"', "mysql": "utf8mb4_bin", "sqlite": "NOCASE"}

COLLATED = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

class Base(DeclarativeBase):
    pass

class Tag(Base):
    __tablename__ = "tag"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(30))
'''


def test_dialect_details_are_kept(backend: str, fresh_db: str, second_db: str, tmp_path: Path) -> None:
    """A collation the models do not declare is written as reflected: a fresh database built from the baseline
    has it too, and `diff` against the models reports it as the real difference it is."""
    execute(fresh_db, f"CREATE TABLE tag (id {ID_COLUMN[backend]}, "
                      f"label VARCHAR(30) COLLATE {COLLATION[backend]} NOT NULL)",
            "INSERT INTO tag (label) VALUES ('a')")
    project = write_project(tmp_path / "proj", fresh_db, COLLATED)
    cli(project, "baseline")
    text = next((project / "migrations").glob("0001_*.py")).read_text()
    assert "collation=" in text, text
    assert "Live schema matches" in cli(project, "status").stdout
    assert "collate" in cli(project, "diff", check=False).stdout
    cli(project, "upgrade", "--url", second_db)
    status = cli(project, "status", "--url", second_db)
    assert "Live schema matches" in status.stdout, status.stdout
