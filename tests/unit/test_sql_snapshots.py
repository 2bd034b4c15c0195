"""SQL snapshots: the exact statements each dialect compiles for each operation, with no database.

One case per line: dialect, operation, expected statements. The schemas below are
the state *before* each operation; the state after is the operation applied to it.
"""

from __future__ import annotations

import pytest

from schemashift import operations as ops
from schemashift.dialects import get_dialect
from schemashift.dialects.base import one_line
from schemashift.dialects.mysql.dialect import MySQLDialect
from schemashift.dialects.postgresql.dialect import _advisory_key
from schemashift.errors import MigrationError
from schemashift.model.schema import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)
from schemashift.model.types import Type

PG, MY, LITE = "postgresql", "mysql", "sqlite"

INT = Type("integer")
STATUS = Type("enum", values=("draft", "published"), name="book_status")
TAG = Type("enum", values=("a", "b"), name="tag")

AUTHORS = Table(
    "authors",
    (Column("id", INT, nullable=False, autoincrement=True), Column("name", Type("string", length=100), nullable=False)),
    primary_key=PrimaryKey(("id",)),
)
BOOKS = Table(
    "books",
    (
        Column("id", INT, nullable=False, autoincrement=True),
        Column("title", Type("string", length=200), nullable=False),
        Column("author_id", INT),
        Column("status", STATUS, default="'draft'"),
        Column("price", Type("numeric", precision=10, scale=2)),
    ),
    primary_key=PrimaryKey(("id",)),
    indexes=(Index("ix_books_title", ("title",)),),
    uniques=(UniqueConstraint(("title", "author_id"), "uq_books_title"),),
    foreign_keys=(ForeignKey(("author_id",), "authors", ("id",), "fk_books_author", ondelete="CASCADE"),),
    checks=(CheckConstraint("price >= 0", "ck_books_price"),),
)
USERS = Table(
    "users",
    (
        Column("id", Type("bigint"), nullable=False, autoincrement=True, identity=Identity(always=True)),
        Column("email", Type("string", length=200), nullable=False, comment="login"),
        Column("role", Type("enum", values=("user", "admin"), name="role")),
        Column("tags", Type("array", item=TAG)),
    ),
    primary_key=PrimaryKey(("id",), "pk_users"),
    indexes=(Index("ix_users_email", ("email",), unique=True, where="email IS NOT NULL"),),
    schema="app",
    comment="accounts",
)
REVIEWS = Table(
    "reviews",
    (Column("id", INT, nullable=False), Column("state", STATUS, default="'published'")),
    primary_key=PrimaryKey(("id",)),
)

BASE = Schema.of([AUTHORS, BOOKS, USERS])
#: `book_status` used by two tables.
SHARED = BASE.with_table(REVIEWS)
#: books with unnamed constraints.
UNNAMED = BASE.with_table(
    BOOKS.evolve(uniques=(UniqueConstraint(("title",)),), checks=(CheckConstraint("price >= 0"),),
                 foreign_keys=(ForeignKey(("author_id",), "authors", ("id",)),))
)

TITLE, PRICE, STATE = BOOKS.column("title"), BOOKS.column("price"), BOOKS.column("status")
USER_ID, TAGS = USERS.column("id"), USERS.column("tags")

# SQLite rebuild pieces
LITE_BOOKS = "id INTEGER NOT NULL, title VARCHAR(200) NOT NULL, author_id INTEGER, status VARCHAR(9) DEFAULT 'draft'"
LITE_KEYS = (
    "PRIMARY KEY (id), CONSTRAINT uq_books_title UNIQUE (title, author_id), CONSTRAINT ck_books_price CHECK (price >= 0), "
    "CONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id) ON DELETE CASCADE"
)
ALL_COLUMNS = "id, title, author_id, status, price"


def rebuilt_books(body: str, columns: str = ALL_COLUMNS, select: str = ALL_COLUMNS) -> list[str]:
    """The five statements of a SQLite rebuild of `books` (its one index recreated last)."""
    return [
        f"CREATE TABLE _schemashift_new_books ({body})",
        f"INSERT INTO _schemashift_new_books ({columns}) SELECT {select} FROM books",
        "DROP TABLE books",
        "ALTER TABLE _schemashift_new_books RENAME TO books",
        "CREATE INDEX ix_books_title ON books (title)",
    ]


def case(name: str, dialect: str, op: ops.Operation, expected: list[str], before: Schema = BASE) -> object:
    return pytest.param(dialect, op, expected, before, id=f"{dialect}-{name}")


CASES = [
    # --- tables --------------------------------------------------------------------------------------------------
    case("create-table", PG, ops.CreateTable(USERS.evolve(name="members")), [
        "CREATE SCHEMA IF NOT EXISTS app",  # the first object in schema app
        "CREATE TYPE role AS ENUM ('user', 'admin')", "CREATE TYPE tag AS ENUM ('a', 'b')",
        "CREATE TABLE app.members (id BIGINT GENERATED ALWAYS AS IDENTITY, email VARCHAR(200) NOT NULL, role role, tags tag[], "
        "CONSTRAINT pk_users PRIMARY KEY (id))",
        "COMMENT ON TABLE app.members IS 'accounts'", "COMMENT ON COLUMN app.members.email IS 'login'",
        "CREATE UNIQUE INDEX ix_users_email ON app.members (email) WHERE email IS NOT NULL"], before=Schema()),
    case("create-table-enum-exists", PG, ops.CreateTable(REVIEWS), [
        "CREATE TABLE reviews (id INTEGER NOT NULL, state book_status DEFAULT 'published', PRIMARY KEY (id))"]),
    case("create-table-fk", PG, ops.CreateTable(BOOKS.evolve(name="books2", indexes=(), checks=())), [
        "CREATE TABLE books2 (id SERIAL NOT NULL, title VARCHAR(200) NOT NULL, author_id INTEGER, status book_status DEFAULT 'draft', "
        "price NUMERIC(10, 2), PRIMARY KEY (id), CONSTRAINT uq_books_title UNIQUE (title, author_id), "
        "CONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id) ON DELETE CASCADE)"]),
    case("create-table", MY, ops.CreateTable(BOOKS.evolve(name="books2", comment="all books", checks=())), [
        "CREATE TABLE books2 (id INTEGER NOT NULL AUTO_INCREMENT, title VARCHAR(200) NOT NULL, author_id INTEGER, "
        "status ENUM('draft','published') DEFAULT 'draft', price NUMERIC(10, 2), PRIMARY KEY (id), "
        "CONSTRAINT uq_books_title UNIQUE (title, author_id), "
        "CONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id) ON DELETE CASCADE) COMMENT='all books'",
        "CREATE INDEX ix_books_title ON books2 (title)"]),
    case("create-table-comment", MY, ops.CreateTable(AUTHORS.evolve(name="people", columns=(
        Column("id", INT, nullable=False, comment="it's the key"),))), [
        "CREATE TABLE people (id INTEGER NOT NULL COMMENT 'it''s the key', PRIMARY KEY (id))"]),
    case("create-table", LITE, ops.CreateTable(BOOKS.evolve(name="books2", comment="ignored")), [
        "CREATE TABLE books2 (" + LITE_BOOKS + ", price NUMERIC(10, 2), " + LITE_KEYS + ")",
        "CREATE INDEX ix_books_title ON books2 (title)"]),
    case("drop-table", PG, ops.DropTable("books"), ["DROP TABLE books", "DROP TYPE book_status"]),
    case("drop-table-enum-still-used", PG, ops.DropTable("books"), ["DROP TABLE books"], before=SHARED),
    case("drop-table-schema", PG, ops.DropTable("users", schema="app"), ["DROP TABLE app.users", "DROP TYPE role", "DROP TYPE tag"]),
    case("drop-table", MY, ops.DropTable("books"), ["DROP TABLE books"]),
    case("drop-table", LITE, ops.DropTable("books"), ["DROP TABLE books"]),
    case("rename-table", PG, ops.RenameTable("users", "people", schema="app"), [
        "ALTER TABLE app.users RENAME TO people",
        "ALTER SEQUENCE IF EXISTS app.users_id_seq RENAME TO people_id_seq",  # its SERIAL's, as create_all names it
    ]),
    case("rename-table", MY, ops.RenameTable("books", "volumes"), ["ALTER TABLE books RENAME TO volumes"]),
    case("rename-table", LITE, ops.RenameTable("books", "volumes"), ["ALTER TABLE books RENAME TO volumes"]),
    # --- columns -------------------------------------------------------------------------------------------------
    case("add-column", PG, ops.AddColumn("books", Column("pages", INT, nullable=False, default="0", comment="count")), [
        "ALTER TABLE books ADD COLUMN pages INTEGER DEFAULT 0 NOT NULL", "COMMENT ON COLUMN books.pages IS 'count'"]),
    case("add-column-new-enum", PG, ops.AddColumn("books", Column("genre", Type("enum", values=("sf",), name="genre"))), [
        "CREATE TYPE genre AS ENUM ('sf')", "ALTER TABLE books ADD COLUMN genre genre"]),
    case("add-column-known-enum", PG, ops.AddColumn("users", Column("other", USERS.column("role").type), schema="app"), [
        "ALTER TABLE app.users ADD COLUMN other role"]),
    case("add-column", MY, ops.AddColumn("books", Column("pages", INT, nullable=False, default="0", comment="count")), [
        "ALTER TABLE books ADD COLUMN pages INTEGER NOT NULL COMMENT 'count' DEFAULT 0"]),
    case("add-column", LITE, ops.AddColumn("books", Column("pages", INT, nullable=False, default="0")), [
        "ALTER TABLE books ADD COLUMN pages INTEGER DEFAULT 0 NOT NULL"]),
    # a one-off fill for the rows already there: added with it as default, then the default goes
    case("add-column-fill", PG, ops.AddColumn("books", Column("pages", INT, nullable=False), fill=0), [
        "ALTER TABLE books ADD COLUMN pages INTEGER DEFAULT 0 NOT NULL", "ALTER TABLE books ALTER COLUMN pages DROP DEFAULT"]),
    case("add-column-fill-keeps-default", PG, ops.AddColumn("books", Column("lang", Type("string", length=2),
                                                                                nullable=False, default="'en'"), fill="it's"), [
        "ALTER TABLE books ADD COLUMN lang VARCHAR(2) DEFAULT 'it''s' NOT NULL",
        "ALTER TABLE books ALTER COLUMN lang SET DEFAULT 'en'"]),
    case("add-column-fill", MY, ops.AddColumn("books", Column("done", Type("boolean"), nullable=False), fill=True), [
        "ALTER TABLE books ADD COLUMN done BOOL NOT NULL DEFAULT true", "ALTER TABLE books MODIFY COLUMN done BOOL NOT NULL"]),
    case("add-column-fill", LITE, ops.AddColumn("books", Column("lang", Type("string", length=2), nullable=False), fill="en"),
         ["ALTER TABLE books ADD COLUMN lang VARCHAR(2) DEFAULT 'en' NOT NULL",
          *rebuilt_books(f"{LITE_BOOKS}, price NUMERIC(10, 2), lang VARCHAR(2) NOT NULL, {LITE_KEYS}",
                         ALL_COLUMNS + ", lang", ALL_COLUMNS + ", lang")]),
    case("add-column-string-default", LITE, ops.AddColumn("books", Column("lang", Type("string", length=2), default="'en'")), [
        "ALTER TABLE books ADD COLUMN lang VARCHAR(2) DEFAULT 'en'"]),
    case("add-column-needs-rebuild", LITE, ops.AddColumn("books", Column("at", Type("datetime"), default="CURRENT_TIMESTAMP")),
         rebuilt_books(f"{LITE_BOOKS}, price NUMERIC(10, 2), at DATETIME DEFAULT CURRENT_TIMESTAMP, {LITE_KEYS}")),
    case("add-column-not-null-no-default", LITE, ops.AddColumn("books", Column("isbn", Type("string", length=13), nullable=False)),
         rebuilt_books(f"{LITE_BOOKS}, price NUMERIC(10, 2), isbn VARCHAR(13) NOT NULL, {LITE_KEYS}")),
    case("drop-column", PG, ops.DropColumn("books", "price"), ["ALTER TABLE books DROP COLUMN price"]),
    case("drop-column-last-enum-user", PG, ops.DropColumn("books", "status"), [
        "ALTER TABLE books DROP COLUMN status", "DROP TYPE book_status"]),
    case("drop-column", MY, ops.DropColumn("books", "price"), ["ALTER TABLE books DROP COLUMN price"]),
    case("drop-column", LITE, ops.DropColumn("books", "price"), rebuilt_books(
        f"{LITE_BOOKS}, PRIMARY KEY (id), CONSTRAINT uq_books_title UNIQUE (title, author_id), CONSTRAINT ck_books_price "
        "CHECK (price >= 0), CONSTRAINT fk_books_author FOREIGN KEY(author_id) REFERENCES authors (id) ON DELETE CASCADE",
        "id, title, author_id, status", "id, title, author_id, status")),
    case("rename-column", PG, ops.RenameColumn("users", "email", "mail", schema="app"), [
        "ALTER TABLE app.users RENAME COLUMN email TO mail"]),
    case("rename-column", MY, ops.RenameColumn("books", "title", "name"), ["ALTER TABLE books RENAME COLUMN title TO name"]),
    case("rename-column", LITE, ops.RenameColumn("books", "title", "name"), ["ALTER TABLE books RENAME COLUMN title TO name"]),
    # --- alter column: PostgreSQL ----------------------------------------------------------------------------------
    case("alter-type-nullable", PG, ops.AlterColumn("books", "price", PRICE.evolve(type=Type("numeric", precision=12, scale=2),
                                                                                    nullable=False)), [
        "ALTER TABLE books ALTER COLUMN price TYPE NUMERIC(12, 2) USING price::NUMERIC(12, 2)",
        "ALTER TABLE books ALTER COLUMN price SET NOT NULL"]),
    case("alter-nullable-default", PG, ops.AlterColumn("books", "title", TITLE.evolve(nullable=True, default="'x'")), [
        "ALTER TABLE books ALTER COLUMN title DROP NOT NULL", "ALTER TABLE books ALTER COLUMN title SET DEFAULT 'x'"]),
    case("not-null-fills-nulls", PG, ops.AlterColumn("books", "status", STATE.evolve(nullable=False)), [
        "UPDATE books SET status = 'draft' WHERE status IS NULL", "ALTER TABLE books ALTER COLUMN status SET NOT NULL"]),
    case("not-null-fills-nulls", MY, ops.AlterColumn("books", "status", STATE.evolve(nullable=False)), [
        "UPDATE books SET status = 'draft' WHERE status IS NULL",
        "ALTER TABLE books MODIFY COLUMN status ENUM('draft','published') NOT NULL DEFAULT 'draft'"]),
    case("alter-drop-default", PG, ops.AlterColumn("books", "status", STATE.evolve(default=None)), [
        "ALTER TABLE books ALTER COLUMN status DROP DEFAULT"]),
    case("alter-type-keeps-default", PG, ops.AlterColumn("books", "author_id", BOOKS.column("author_id").evolve(
        type=Type("bigint"), default="1")), [
        "ALTER TABLE books ALTER COLUMN author_id TYPE BIGINT USING author_id::BIGINT",
        "ALTER TABLE books ALTER COLUMN author_id SET DEFAULT 1"]),
    case("alter-comment", PG, ops.AlterColumn("books", "title", TITLE.evolve(type=Type("text"), comment="the title")), [
        "ALTER TABLE books ALTER COLUMN title TYPE TEXT USING title::TEXT", "COMMENT ON COLUMN books.title IS 'the title'"]),
    case("alter-drop-comment", PG, ops.AlterColumn("users", "email", USERS.column("email").evolve(comment=None), schema="app"), [
        "COMMENT ON COLUMN app.users.email IS NULL"]),
    case("alter-no-change", PG, ops.AlterColumn("books", "title", TITLE), []),
    case("enum-add-values", PG, ops.AlterColumn("books", "status", STATE.evolve(
        type=STATUS.evolve(values=("new", "draft", "review", "published", "gone")))), [
        "ALTER TYPE book_status ADD VALUE IF NOT EXISTS 'new' BEFORE 'draft'",
        "ALTER TYPE book_status ADD VALUE IF NOT EXISTS 'review' AFTER 'draft'",
        "ALTER TYPE book_status ADD VALUE IF NOT EXISTS 'gone' AFTER 'published'"]),
    case("enum-add-value-and-default", PG, ops.AlterColumn("books", "status", STATE.evolve(
        type=STATUS.evolve(values=("draft", "published", "gone")), default="'gone'")), [
        "ALTER TYPE book_status ADD VALUE IF NOT EXISTS 'gone' AFTER 'published'",
        "ALTER TABLE books ALTER COLUMN status SET DEFAULT 'gone'"]),
    case("enum-remove-value", PG, ops.AlterColumn("books", "status", STATE.evolve(type=STATUS.evolve(values=("draft",)))), [
        "CREATE TYPE book_status_schemashift_new AS ENUM ('draft')",
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM books WHERE status::text IN ('published')) THEN RAISE EXCEPTION "
        "'rows of books.status still use the value(s) published that enum type book_status loses: move them to another "
        "value first'; END IF; END $$",
        "ALTER TABLE books ALTER COLUMN status DROP DEFAULT",
        "ALTER TABLE books ALTER COLUMN status TYPE book_status_schemashift_new USING status::text::book_status_schemashift_new",
        "ALTER TABLE books ALTER COLUMN status SET DEFAULT 'draft'",
        "DROP TYPE book_status", "ALTER TYPE book_status_schemashift_new RENAME TO book_status"]),
    case("enum-reorder-shared", PG, ops.AlterColumn("books", "status", STATE.evolve(
        type=STATUS.evolve(values=("published", "draft")))), [
        "CREATE TYPE book_status_schemashift_new AS ENUM ('published', 'draft')",
        "ALTER TABLE books ALTER COLUMN status DROP DEFAULT",
        "ALTER TABLE books ALTER COLUMN status TYPE book_status_schemashift_new USING status::text::book_status_schemashift_new",
        "ALTER TABLE books ALTER COLUMN status SET DEFAULT 'draft'",
        "ALTER TABLE reviews ALTER COLUMN state DROP DEFAULT",
        "ALTER TABLE reviews ALTER COLUMN state TYPE book_status_schemashift_new USING state::text::book_status_schemashift_new",
        "ALTER TABLE reviews ALTER COLUMN state SET DEFAULT 'published'",
        "DROP TYPE book_status", "ALTER TYPE book_status_schemashift_new RENAME TO book_status"], before=SHARED),
    case("enum-array-remove-value", PG, ops.AlterColumn("users", "tags", TAGS.evolve(
        type=Type("array", item=TAG.evolve(values=("b", "c")))), schema="app"), [
        "CREATE TYPE tag_schemashift_new AS ENUM ('b', 'c')",
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM app.users WHERE tags::text[] && ARRAY['a']::text[]) THEN RAISE EXCEPTION "
        "'rows of app.users.tags still use the value(s) a that enum type tag loses: move them to another value first'; "
        "END IF; END $$",
        "ALTER TABLE app.users ALTER COLUMN tags TYPE tag_schemashift_new[] USING tags::text[]::tag_schemashift_new[]",
        "DROP TYPE tag", "ALTER TYPE tag_schemashift_new RENAME TO tag"]),
    case("enum-to-string", PG, ops.AlterColumn("books", "status", STATE.evolve(type=Type("string", length=20))), [
        "ALTER TABLE books ALTER COLUMN status DROP DEFAULT",
        "ALTER TABLE books ALTER COLUMN status TYPE VARCHAR(20) USING status::text::VARCHAR(20)",
        "ALTER TABLE books ALTER COLUMN status SET DEFAULT 'draft'", "DROP TYPE book_status"]),
    case("enum-to-string-shared", PG, ops.AlterColumn("books", "status", STATE.evolve(type=Type("text"), default=None)), [
        "ALTER TABLE books ALTER COLUMN status DROP DEFAULT",
        "ALTER TABLE books ALTER COLUMN status TYPE TEXT USING status::text::TEXT"], before=SHARED),
    case("string-to-new-enum", PG, ops.AlterColumn("books", "title", TITLE.evolve(type=STATUS.evolve(name="kind"))), [
        "CREATE TYPE kind AS ENUM ('draft', 'published')",
        "ALTER TABLE books ALTER COLUMN title TYPE kind USING title::kind"]),
    case("identity-drop", PG, ops.AlterColumn("users", "id", USER_ID.evolve(identity=None, autoincrement=False), schema="app"), [
        "ALTER TABLE app.users ALTER COLUMN id DROP IDENTITY IF EXISTS"]),
    case("identity-change", PG, ops.AlterColumn("users", "id", USER_ID.evolve(identity=Identity(start=10, increment=5)),
                                                schema="app"), [
        "ALTER TABLE app.users ALTER COLUMN id SET GENERATED BY DEFAULT SET START WITH 10 SET INCREMENT BY 5"]),
    case("serial-to-identity", PG, ops.AlterColumn("authors", "id", AUTHORS.column("id").evolve(identity=Identity())), [
        "ALTER TABLE authors ALTER COLUMN id DROP DEFAULT", "DROP SEQUENCE IF EXISTS authors_id_seq",
        "ALTER TABLE authors ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY",
        "SELECT setval(pg_get_serial_sequence('authors', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM authors"]),
    case("identity-add-start", PG, ops.AlterColumn("books", "author_id", BOOKS.column("author_id").evolve(
        nullable=False, identity=Identity(always=True, start=100))), [
        "ALTER TABLE books ALTER COLUMN author_id SET NOT NULL",
        "ALTER TABLE books ALTER COLUMN author_id ADD GENERATED ALWAYS AS IDENTITY (START WITH 100)"]),
    case("serial-off", PG, ops.AlterColumn("authors", "id", AUTHORS.column("id").evolve(autoincrement=False)), [
        "ALTER TABLE authors ALTER COLUMN id DROP DEFAULT", "DROP SEQUENCE IF EXISTS authors_id_seq"]),
    case("serial-on", PG, ops.AlterColumn("books", "author_id", BOOKS.column("author_id").evolve(autoincrement=True)), [
        "CREATE SEQUENCE books_author_id_seq OWNED BY books.author_id",
        "ALTER TABLE books ALTER COLUMN author_id SET DEFAULT nextval('books_author_id_seq'::regclass)",
        "SELECT setval('books_author_id_seq', COALESCE(MAX(author_id), 0) + 1, false) FROM books"]),
    case("computed-add", PG, ops.AlterColumn("books", "price", PRICE.evolve(computed=Computed("id * 2", persisted=True))), [
        "ALTER TABLE books DROP COLUMN price",
        "ALTER TABLE books ADD COLUMN price NUMERIC(10, 2) GENERATED ALWAYS AS (id * 2) STORED"]),
    case("computed-unstated-is-stored", PG, ops.AddColumn("books", Column("twice", INT, computed=Computed("id * 2"))), [
        "ALTER TABLE books ADD COLUMN twice INTEGER GENERATED ALWAYS AS (id * 2) STORED"]),
    case("computed-unstated-is-virtual", LITE, ops.AddColumn("books", Column("twice", INT, computed=Computed("id * 2"))), [
        "ALTER TABLE books ADD COLUMN twice INTEGER GENERATED ALWAYS AS (id * 2)"]),
    case("computed-drop", PG, ops.AlterColumn("books", "price", PRICE), ["ALTER TABLE books ALTER COLUMN price DROP EXPRESSION"],
         before=BASE.with_table(BOOKS.evolve(columns=BOOKS.columns[:4] + (PRICE.evolve(computed=Computed("id * 2", True)),)))),
    # --- alter column: MySQL and SQLite ------------------------------------------------------------------------------
    case("alter-modify", MY, ops.AlterColumn("books", "price", PRICE.evolve(type=Type("numeric", precision=12, scale=2),
                                                                             nullable=False, comment="net")), [
        "ALTER TABLE books MODIFY COLUMN price NUMERIC(12, 2) NOT NULL COMMENT 'net'"]),
    case("alter-modify-keeps-auto-increment", MY, ops.AlterColumn("books", "id", BOOKS.column("id").evolve(type=Type("bigint"))), [
        "ALTER TABLE books MODIFY COLUMN id BIGINT NOT NULL AUTO_INCREMENT"]),
    case("alter-enum-values", MY, ops.AlterColumn("books", "status", STATE.evolve(type=STATUS.evolve(values=("draft", "gone")))), [
        "ALTER TABLE books MODIFY COLUMN status ENUM('draft','gone') DEFAULT 'draft'"]),
    case("alter-no-change", MY, ops.AlterColumn("books", "title", TITLE), []),
    case("alter-cast", LITE, ops.AlterColumn("books", "title", TITLE.evolve(type=INT)), rebuilt_books(
        f"id INTEGER NOT NULL, title INTEGER NOT NULL, author_id INTEGER, status VARCHAR(9) DEFAULT 'draft', "
        f"price NUMERIC(10, 2), {LITE_KEYS}", select="id, CAST(title AS INTEGER), author_id, status, price")),
    case("alter-not-null-default", LITE, ops.AlterColumn("books", "status", STATE.evolve(nullable=False)), rebuilt_books(
        f"id INTEGER NOT NULL, title VARCHAR(200) NOT NULL, author_id INTEGER, status VARCHAR(9) DEFAULT 'draft' NOT NULL, "
        f"price NUMERIC(10, 2), {LITE_KEYS}", select="id, title, author_id, COALESCE(status, 'draft'), price")),
    case("alter-no-cast-to-numeric-affinity", LITE, ops.AlterColumn("books", "price", PRICE.evolve(type=Type("date"))),
         rebuilt_books(f"{LITE_BOOKS}, price DATE, {LITE_KEYS}")),
    case("alter-no-change", LITE, ops.AlterColumn("books", "title", TITLE), []),
    # --- indexes ---------------------------------------------------------------------------------------------------
    case("create-index", PG, ops.CreateIndex("books", Index("ix_books_sp", ("status", "price"), unique=True)), [
        "CREATE UNIQUE INDEX ix_books_sp ON books (status, price)"]),
    case("create-index-expression", PG, ops.CreateIndex("users", Index("ix_lower", expressions=("lower(email)",)), schema="app"), [
        "CREATE INDEX ix_lower ON app.users (lower(email))"]),
    case("create-index-partial", LITE, ops.CreateIndex("books", Index("ix_cheap", ("price",), where="price < 10")), [
        "CREATE INDEX ix_cheap ON books (price) WHERE price < 10"]),
    case("create-index", MY, ops.CreateIndex("books", Index("ix_books_sp", ("status", "price"), unique=True)), [
        "CREATE UNIQUE INDEX ix_books_sp ON books (status, price)"]),
    case("drop-index", PG, ops.DropIndex("users", "ix_users_email", schema="app"), ["DROP INDEX app.ix_users_email"]),
    case("drop-index", MY, ops.DropIndex("books", "ix_books_title"), ["DROP INDEX ix_books_title ON books"]),
    case("drop-index", LITE, ops.DropIndex("books", "ix_books_title"), ["DROP INDEX ix_books_title"]),
    case("rename-index", PG, ops.RenameIndex("users", "ix_users_email", "ix_email", schema="app"), [
        "ALTER INDEX app.ix_users_email RENAME TO ix_email"]),
    case("rename-index", MY, ops.RenameIndex("books", "ix_books_title", "ix_title"), [
        "ALTER TABLE books RENAME INDEX ix_books_title TO ix_title"]),
    case("rename-index", LITE, ops.RenameIndex("books", "ix_books_title", "ix_title"), [
        "DROP INDEX ix_books_title", "CREATE INDEX ix_title ON books (title)"]),
    # --- constraints -----------------------------------------------------------------------------------------------
    case("add-unique", PG, ops.AddConstraint("authors", UniqueConstraint(("name",), "uq_name")), [
        "ALTER TABLE authors ADD CONSTRAINT uq_name UNIQUE (name)"]),
    case("add-check", PG, ops.AddConstraint("books", CheckConstraint("price < 1000", "ck_max")), [
        "ALTER TABLE books ADD CONSTRAINT ck_max CHECK (price < 1000)"]),
    case("add-fk", PG, ops.AddConstraint("users", ForeignKey(("id",), "books", ("id",), "fk_u", deferrable=True,
                                                             initially="DEFERRED"), schema="app"), [
        "ALTER TABLE app.users ADD CONSTRAINT fk_u FOREIGN KEY(id) REFERENCES books (id) DEFERRABLE INITIALLY DEFERRED"]),
    case("add-pk", PG, ops.AddConstraint("reviews", PrimaryKey(("id",), "pk_reviews")), [
        "ALTER TABLE reviews ADD CONSTRAINT pk_reviews PRIMARY KEY (id)"],
         before=BASE.with_table(REVIEWS.evolve(primary_key=None))),
    case("rename-pk", PG, ops.RenameConstraint("users", "pk_users", "users_pkey", schema="app"), [
        "ALTER TABLE app.users RENAME CONSTRAINT pk_users TO users_pkey"]),
    case("rename-unique", PG, ops.RenameConstraint("books", "uq_books_title", "uq_title"), [
        "ALTER TABLE books RENAME CONSTRAINT uq_books_title TO uq_title"]),
    case("rename-unique", MY, ops.RenameConstraint("books", "uq_books_title", "uq_title"), [
        "ALTER TABLE books RENAME INDEX uq_books_title TO uq_title"]),
    case("rename-unique", LITE, ops.RenameConstraint("books", "uq_books_title", "uq_title"), rebuilt_books(
        f"{LITE_BOOKS}, price NUMERIC(10, 2), " + LITE_KEYS.replace("uq_books_title", "uq_title"))),
    case("drop-fk", PG, ops.DropConstraint("books", "fk_books_author"), ["ALTER TABLE books DROP CONSTRAINT fk_books_author"]),
    case("drop-pk-named", PG, ops.DropConstraint("users", "pk_users", schema="app"), ["ALTER TABLE app.users DROP CONSTRAINT pk_users"]),
    case("drop-pk-unnamed", PG, ops.DropConstraint("books", None, definition=PrimaryKey(("id",))), [
        "ALTER TABLE books DROP CONSTRAINT books_pkey"]),
    case("drop-unique-unnamed", PG, ops.DropConstraint("books", None, definition=UniqueConstraint(("title",))), [
        "ALTER TABLE books DROP CONSTRAINT books_title_key"], before=UNNAMED),
    case("drop-fk-unnamed", PG, ops.DropConstraint("books", None, definition=UNNAMED.table("books").foreign_keys[0]), [
        "ALTER TABLE books DROP CONSTRAINT books_author_id_fkey"], before=UNNAMED),
    case("add-fk", MY, ops.AddConstraint("books", ForeignKey(("author_id",), "authors", ("id",), "fk_a")), [
        "ALTER TABLE books ADD CONSTRAINT fk_a FOREIGN KEY(author_id) REFERENCES authors (id)"]),
    case("add-check", MY, ops.AddConstraint("books", CheckConstraint("price < 1000", "ck_max")), [
        "ALTER TABLE books ADD CONSTRAINT ck_max CHECK (price < 1000)"]),
    case("drop-fk", MY, ops.DropConstraint("books", "fk_books_author"), [
        "ALTER TABLE books DROP FOREIGN KEY fk_books_author", "ALTER TABLE books DROP INDEX fk_books_author"]),  # InnoDB's
    case("drop-unique", MY, ops.DropConstraint("books", "uq_books_title"), ["ALTER TABLE books DROP INDEX uq_books_title"]),
    case("drop-check", MY, ops.DropConstraint("books", "ck_books_price"), ["ALTER TABLE books DROP CONSTRAINT ck_books_price"]),
    case("drop-pk", MY, ops.DropConstraint("books", None, definition=PrimaryKey(("id",))), [
        "ALTER TABLE books MODIFY COLUMN id INTEGER NOT NULL, DROP PRIMARY KEY"]),  # AUTO_INCREMENT needs the key
    case("drop-fk-unnamed", MY, ops.DropConstraint("books", None, definition=UNNAMED.table("books").foreign_keys[0]), [
        "SET @schemashift_fk = (SELECT CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
        "DATABASE() AND TABLE_NAME = 'books' AND REFERENCED_TABLE_NAME = 'authors' GROUP BY CONSTRAINT_NAME HAVING "
        "GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) = 'author_id' LIMIT 1)",
        "SET @schemashift_sql = COALESCE(CONCAT('ALTER TABLE books DROP FOREIGN KEY `', @schemashift_fk, '`, DROP INDEX "
        "author_id'), 'SIGNAL SQLSTATE ''45000'' SET MESSAGE_TEXT = ''schemashift: no foreign key (author_id) -> authors "
        "on books''')",
        "PREPARE schemashift_stmt FROM @schemashift_sql", "EXECUTE schemashift_stmt", "DEALLOCATE PREPARE schemashift_stmt",
    ], before=UNNAMED),
    case("drop-check-unnamed", MY, ops.DropConstraint("books", None, definition=CheckConstraint("price >= 0")), [
        "SET @schemashift_ck = (SELECT COALESCE((SELECT MAX(CONSTRAINT_NAME) FROM information_schema.TABLE_CONSTRAINTS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'books' AND CONSTRAINT_TYPE = 'CHECK' AND CONSTRAINT_NAME "
        "NOT IN ('id', 'title', 'author_id', 'status', 'price') AND CONSTRAINT_NAME IN (SELECT CONSTRAINT_NAME FROM "
        "information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND CHECK_CLAUSE = 'price >= 0')), "
        "(SELECT IF(COUNT(*) = 1, MIN(CONSTRAINT_NAME), NULL) FROM information_schema.TABLE_CONSTRAINTS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'books' AND CONSTRAINT_TYPE = 'CHECK' AND CONSTRAINT_NAME "
        "NOT IN ('id', 'title', 'author_id', 'status', 'price'))))",
        "SET @schemashift_sql = COALESCE(CONCAT('ALTER TABLE books DROP CONSTRAINT `', @schemashift_ck, '`'), 'SIGNAL "
        "SQLSTATE ''45000'' SET MESSAGE_TEXT = ''schemashift: cannot tell which unnamed CHECK of books to drop (none or "
        "several, none with its text)''')",
        "PREPARE schemashift_stmt FROM @schemashift_sql", "EXECUTE schemashift_stmt", "DEALLOCATE PREPARE schemashift_stmt",
    ], before=UNNAMED),
    case("drop-unique-unnamed", MY, ops.DropConstraint("books", None, definition=UniqueConstraint(("title",))), [
        "ALTER TABLE books DROP INDEX title"], before=UNNAMED),
    case("add-check", LITE, ops.AddConstraint("books", CheckConstraint("price < 1000", "ck_max")), rebuilt_books(
        f"{LITE_BOOKS}, price NUMERIC(10, 2), {LITE_KEYS.replace(', CONSTRAINT fk_', ', CONSTRAINT ck_max CHECK (price < 1000), CONSTRAINT fk_')}")),
    case("drop-fk", LITE, ops.DropConstraint("books", "fk_books_author"), rebuilt_books(
        f"{LITE_BOOKS}, price NUMERIC(10, 2), PRIMARY KEY (id), CONSTRAINT uq_books_title UNIQUE (title, author_id), "
        "CONSTRAINT ck_books_price CHECK (price >= 0)")),
    case("drop-check-unnamed", LITE, ops.DropConstraint("books", None, definition=CheckConstraint("price >= 0")), rebuilt_books(
        f"{LITE_BOOKS}, price NUMERIC(10, 2), PRIMARY KEY (id), UNIQUE (title), FOREIGN KEY(author_id) REFERENCES authors (id)"),
         before=UNNAMED),
    case("add-unique", LITE, ops.AddConstraint("authors", UniqueConstraint(("name",), "uq_name")), [
        "CREATE TABLE _schemashift_new_authors (id INTEGER NOT NULL, name VARCHAR(100) NOT NULL, PRIMARY KEY (id), "
        "CONSTRAINT uq_name UNIQUE (name))",
        "INSERT INTO _schemashift_new_authors (id, name) SELECT id, name FROM authors",
        "DROP TABLE authors", "ALTER TABLE _schemashift_new_authors RENAME TO authors"]),
    # --- data ------------------------------------------------------------------------------------------------------
    case("execute-sql", PG, ops.ExecuteSQL("UPDATE books SET price = 0;\n"), ["UPDATE books SET price = 0"]),
    case("execute-sql-other-dialect", PG, ops.ExecuteSQL("VACUUM", dialects=("sqlite",)), []),
    case("execute-sql-this-dialect", LITE, ops.ExecuteSQL("VACUUM", dialects=("sqlite",)), ["VACUUM"]),
    case("execute-sql-mariadb-alias", MY, ops.ExecuteSQL("SELECT 1", dialects=("mariadb",)), ["SELECT 1"]),
    case("backfill", PG, ops.Backfill("books", values={"status": "sold", "price": None}, where="price > 0",
                                      expressions={"title": "upper(title)"}, batch_size=50), [
        "UPDATE books SET status = 'sold', price = NULL, title = upper(title) WHERE (price > 0) /* schemashift runs "
        "this in batches of 50 rows by id ranges, one transaction each; here it is one statement */"]),
    case("backfill-no-where", MY, ops.Backfill("books", values={"price": 1}), [
        "UPDATE books SET price = 1 /* schemashift runs this in batches of 1000 rows by id ranges, one transaction "
        "each; here it is one statement */"]),
    case("backfill-inverse-without-reverse-values", LITE, ops.Backfill("books", values={"price": 1}).inverse(), []),
    case("run-python", PG, ops.RunPython(print), []),
    case("run-python", LITE, ops.RunPython(print), []),
]


@pytest.mark.parametrize("dialect, operation, expected, before", CASES)
def test_snapshot(dialect: str, operation: ops.Operation, expected: list[str], before: Schema) -> None:
    """The statements, compared on one line each (SQLite's CREATE TABLE keeps SQLAlchemy's layout, see below)."""
    compiled = get_dialect(dialect).compile(operation, before, operation.apply(before))
    assert [one_line(statement) for statement in compiled] == expected


def test_sqlite_create_table_keeps_one_element_per_line() -> None:
    """As create_all writes it: SQLAlchemy's inspector reads a generated column's expression from its line."""
    table = Table(
        "t",
        columns=(Column("a", Type("integer")), Column("b", Type("integer"), computed=Computed("a * 2"))),
        foreign_keys=(ForeignKey(("a",), "t", ("a",), name="fk_t"),),
    )
    op = ops.CreateTable(table)
    compiled = get_dialect(LITE).compile(op, Schema(), op.apply(Schema()))
    assert compiled == [
        "CREATE TABLE t (\n\ta INTEGER, \n\tb INTEGER GENERATED ALWAYS AS (a * 2), \n"
        "\tCONSTRAINT fk_t FOREIGN KEY(a) REFERENCES t (a)\n)"
    ]


@pytest.mark.parametrize("dialect, schema_table", [(MY, "shop"), (PG, "shop")])
def test_rename_in_other_schema(dialect: str, schema_table: str) -> None:
    before = Schema.of([AUTHORS.evolve(schema=schema_table)])
    op = ops.RenameTable("authors", "writers", schema=schema_table)
    expected = {
        MY: ["ALTER TABLE shop.authors RENAME TO shop.writers"],
        PG: ["ALTER TABLE shop.authors RENAME TO writers",
             "ALTER SEQUENCE IF EXISTS shop.authors_id_seq RENAME TO writers_id_seq"],
    }
    assert get_dialect(dialect).compile(op, before, op.apply(before)) == expected[dialect]


def test_unresolved_operations_are_resolved_against_before() -> None:
    op = ops.DropColumn("books", "status")  # no definition: the enum is learnt from BASE
    assert get_dialect(PG).compile(op, BASE, op.apply(BASE)) == ["ALTER TABLE books DROP COLUMN status", "DROP TYPE book_status"]


@pytest.mark.parametrize(("check", "name"), [("price >= 0", "books_price_check"), ("price > id", "books_check")])
def test_unnamed_checks_get_the_names_postgresql_gives(check: str, name: str) -> None:
    """Named after the one column the expression uses, else after the table (MySQL looks them up when it runs)."""
    before = BASE.with_table(BOOKS.evolve(checks=(CheckConstraint(check),)))
    op = ops.DropConstraint("books", None, definition=CheckConstraint(check))
    assert get_dialect(PG).compile(op, before, op.apply(before)) == [f"ALTER TABLE books DROP CONSTRAINT {name}"]


def test_unknown_operation_is_refused() -> None:
    class Shrug(ops.Operation):
        def apply(self, schema: Schema) -> Schema:
            return schema

    with pytest.raises(MigrationError, match="cannot compile Shrug"):
        get_dialect(LITE).compile(Shrug(), BASE, BASE)


def test_quoting_of_reserved_and_mixed_case_names() -> None:
    table = Table("order", (Column("Select", INT, comment="it's"),))
    op = ops.CreateTable(table)
    assert get_dialect(PG).compile(op, Schema(), op.apply(Schema())) == [
        'CREATE TABLE "order" ("Select" INTEGER)', """COMMENT ON COLUMN "order"."Select" IS 'it''s'"""]
    assert get_dialect(MY).compile(op, Schema(), op.apply(Schema())) == ["CREATE TABLE `order` (`Select` INTEGER COMMENT 'it''s')"]


@pytest.mark.parametrize(
    "dialect, flags",
    [
        (PG, dict(transactional_ddl=True, native_enum=True, supports_schemas=True, sequences_need_reset=True, rebuilds_tables=False)),
        (MY, dict(transactional_ddl=False, native_enum=False, sequences_need_reset=False, rebuilds_tables=False)),
        ("mariadb", dict(transactional_ddl=False, autocommits_ddl=False)),
        (LITE, dict(transactional_ddl=True, autocommits_ddl=True, rebuilds_tables=True, supports_comments=False, native_enum=False)),
    ],
)
def test_capabilities(dialect: str, flags: dict[str, bool]) -> None:
    found = get_dialect(dialect)
    assert {name: getattr(found, name) for name in flags} == flags
    assert found.sa_dialect().name == (MY if dialect == "mariadb" else dialect)


def test_lock_names() -> None:
    assert _advisory_key("schemashift:x") == _advisory_key("schemashift:x") != _advisory_key("schemashift:y")
    assert -(2**63) <= _advisory_key("a" * 500) < 2**63
    long_a, long_b = MySQLDialect._lock_name("d:" + "a" * 100), MySQLDialect._lock_name("d:" + "a" * 99 + "b")
    assert len(long_a) == 64 and long_a != long_b
    assert MySQLDialect._lock_name("db:schemashift") == "db:schemashift"
