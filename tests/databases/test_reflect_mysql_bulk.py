"""MariaDB's aggregated catalogue reading (JSON per table) gives exactly what plain rows give.

One throw-away database holds awkward tables: names with quotes, backticks,
spaces and non-ASCII letters; comments and defaults with quotes, backslashes,
newlines and Unicode; NULL default vs none vs the string ``'NULL'``; expression
and ``CURRENT_TIMESTAMP`` defaults; generated columns; ENUM/SET values with
commas and quotes; JSON columns; descending, prefix and full-text indexes;
composite foreign keys with rules; checks; ``Foo`` beside ``foo``; a view; a
system-versioned table; a 300-column table with long comments. The aggregated
reader (`_aggregated_rows`, with no fallback) must give a `RawSchema` equal,
key order and SQLAlchemy type attributes included, to the plain-row reader.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from conftest import create_database, drop_database, require_backend

from schemashift.dialects.mysql import reflect as reflect_mysql
from schemashift.reflection.core import RawSchema

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

_WIDE_COMMENT = ("é€ 'q' \"dq\" back\\slash\nnew line\ttab ")[:100]

_DDL = [
    "CREATE TABLE parent (a INT NOT NULL, b VARCHAR(20) NOT NULL, PRIMARY KEY (a, b)) COLLATE utf8mb4_unicode_ci",
    r"""
    CREATE TABLE `we"ird ``tick`` näme` (
      `id` INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      `col with space` VARCHAR(30) DEFAULT 'it''s "quoted" \\ back\nline'
        COMMENT 'comment with ''quotes'', "double", newline\nand tab\t and ünïcødé €',
      `ünï` VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT NULL,
      `bin` VARCHAR(10) COLLATE utf8mb4_bin NOT NULL,
      `vb` VARBINARY(8) DEFAULT 0xFF00,
      `literal_null` VARCHAR(10) DEFAULT 'NULL',
      `no_default` VARCHAR(10) NOT NULL,
      `null_default` INT NULL,
      `explicit_null` INT DEFAULT NULL,
      `ts` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
      `dt` DATETIME(3) DEFAULT CURRENT_TIMESTAMP(3),
      `expr` INT DEFAULT (1 + 2) CHECK (`expr` < 100),
      `uuid_col` CHAR(36) DEFAULT (uuid()),
      `e` ENUM('a,b', 'it''s', 'x"y', 'back\\slash', 'sp ace') DEFAULT 'it''s',
      `s` SET('one two', 'thr''ee', 'x"y') DEFAULT 'one two,x"y',
      `doc` JSON,
      `virt` INT AS (`null_default` * 2) VIRTUAL,
      `stored` VARCHAR(40) AS (CONCAT(`no_default`, '''x"')) PERSISTENT,
      `flag` TINYINT(1) NOT NULL DEFAULT 1,
      `dec` DECIMAL(10,2) DEFAULT -1.50,
      `txt` TEXT COMMENT 'multi\nline',
      `pa` INT, `pb` VARCHAR(20),
      UNIQUE KEY `uq "x"` (`bin`, `no_default`),
      KEY `ix desc` (`null_default` DESC, `expr`),
      KEY `ix prefix` (`txt`(10), `col with space`(5)),
      FULLTEXT KEY `ft` (`txt`),
      CONSTRAINT `fk composite` FOREIGN KEY (`pa`, `pb`) REFERENCES parent (a, b)
        ON DELETE CASCADE ON UPDATE SET NULL,
      CONSTRAINT `chk 'q'` CHECK (`null_default` > 0 OR `col with space` <> 'a''b')
    ) COMMENT = 'table ''comment'' with "quotes"\nnewline ünï' COLLATE utf8mb4_unicode_ci
    """,
    """
    CREATE TABLE `表 données` (
      `ключ` INT PRIMARY KEY, `ref` INT, `x` VARCHAR(5) NOT NULL DEFAULT '',
      KEY `ix_ref` (`ref` DESC),
      CONSTRAINT `fk_self` FOREIGN KEY (`ref`) REFERENCES `表 données` (`ключ`) ON DELETE SET NULL
    ) COMMENT '表 comment'
    """,
    "CREATE TABLE no_index (a INT, b TEXT)",
    "CREATE TABLE versioned (id INT PRIMARY KEY, v VARCHAR(10)) WITH SYSTEM VERSIONING",
    "CREATE VIEW v_tricky AS SELECT a, b FROM parent",
    "CREATE TABLE wide (id INT PRIMARY KEY, "
    + ", ".join(f"c{i:03d} VARCHAR(5) DEFAULT 'v''{i}' COMMENT :comment" for i in range(300))
    + ")",
]
# Only where table names are case-sensitive (lower_case_table_names = 0).
_CASE_DDL = [
    "CREATE TABLE `Foo` (id INT PRIMARY KEY, `Name` VARCHAR(10), KEY `IX` (`Name`))",
    "CREATE TABLE `foo` (id INT PRIMARY KEY, parent_a INT, parent_b VARCHAR(20) COLLATE utf8mb4_unicode_ci, "
    "CONSTRAINT `Fk` FOREIGN KEY (parent_a, parent_b) REFERENCES parent (a, b))",
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """An engine on a throw-away MariaDB database holding the awkward tables."""
    require_backend("mysql")
    name = f"ss_reflect_mysql_bulk_{uuid.uuid4().hex[:8]}"
    url = create_database("mysql", name, Path(tmp_path_factory.mktemp(name)))
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if not conn.dialect.is_mariadb or conn.dialect.server_version_info < (10, 5):  # type: ignore[attr-defined]
                pytest.skip("the aggregated reader needs MariaDB 10.5+")
            for ddl in _DDL:
                conn.execute(sa.text(ddl), {"comment": _WIDE_COMMENT})
            if conn.exec_driver_sql("SELECT @@lower_case_table_names").scalar() == 0:
                for ddl in _CASE_DDL:
                    conn.exec_driver_sql(ddl)
        yield engine
    finally:
        engine.dispose()
        drop_database("mysql", name)


def _plain(value: Any) -> Any:
    """`value` with SQLAlchemy types as (class, public attributes) and dicts as ordered item lists."""
    if isinstance(value, sa.types.TypeEngine):
        attributes = {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
        return (type(value).__name__, sorted(attributes.items(), key=lambda item: item[0]))
    if isinstance(value, dict):
        return [(key, _plain(item)) for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _assert_same(expected: RawSchema, actual: RawSchema) -> None:
    """Equal values; tables in the same order too, but for `Foo` and `foo` in the per-table mappings.

    (Sorted by the catalogue's case-insensitive collation, such tables tie: their
    order in plain rows is the server's whim.)
    """
    assert list(actual.columns) == list(expected.columns)
    for field in fields(RawSchema):
        left, right = _plain(getattr(actual, field.name)), _plain(getattr(expected, field.name))
        assert dict(left) == dict(right), field.name
        assert [k.lower() for k, _ in left] == [k.lower() for k, _ in right], field.name


def test_aggregated_equals_rows(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        rows = reflect_mysql.read_rows(conn, None)
        aggregated = reflect_mysql._read(conn, None, reflect_mysql._aggregated_rows)  # no fallback
        _assert_same(rows, aggregated)
        _assert_same(rows, reflect_mysql.read(conn, None))
        _assert_same(rows, reflect_mysql.read(conn, conn.exec_driver_sql("SELECT DATABASE()").scalar()))


def test_awkward_values_come_through(engine: sa.Engine) -> None:
    """Spot checks, so that both readers cannot be wrong alike."""
    with engine.connect() as conn:
        raw = reflect_mysql._read(conn, None, reflect_mysql._aggregated_rows)
    weird = 'we"ird `tick` näme'
    assert "v_tricky" not in raw.columns and "versioned" in raw.columns
    assert raw.comments[weird] == "table 'comment' with \"quotes\"\nnewline ünï"
    columns = {c["name"]: c for c in raw.columns[weird]}
    assert columns["col with space"]["comment"] == "comment with 'quotes', \"double\", newline\nand tab\t and ünïcødé €"
    assert columns["literal_null"]["default"] == "'NULL'"
    assert columns["null_default"]["default"] is None and columns["no_default"]["default"] is None
    assert columns["e"]["type"].enums[:3] == ["a,b", "it's", 'x"y'] and columns["e"]["default"] == "'it''s'"
    assert columns["doc"]["type"].__class__ is sa.JSON
    assert columns["stored"]["computed"] == {"sqltext": "concat(`no_default`,'\\'x\"')", "persisted": True}
    assert columns["ünï"]["type"].collation == "latin1_bin"
    indexes = {i["name"]: i for i in raw.indexes[weird]}
    assert indexes["ix desc"]["column_sorting"] == {"null_default": ("desc",)}
    assert indexes["ix prefix"]["column_names"] == ["txt", "col with space"]
    assert [u["column_names"] for u in raw.uniques[weird]] == [["bin", "no_default"]]
    (fk,) = raw.foreign_keys[weird]
    assert fk["constrained_columns"] == ["pa", "pb"] and fk["referred_columns"] == ["a", "b"]
    assert fk["options"] == {"ondelete": "CASCADE", "onupdate": "SET NULL"}
    assert {c["name"] for c in raw.checks[weird]} == {"chk 'q'", "expr"}
    assert [c["comment"] for c in raw.columns["wide"][1:]] == [_WIDE_COMMENT] * 300
    if "Foo" in raw.columns:
        assert [c["name"] for c in raw.columns["Foo"]] == ["id", "Name"]
        assert [c["name"] for c in raw.columns["foo"]] == ["id", "parent_a", "parent_b"]
        assert [i["name"] for i in raw.indexes["Foo"]] == ["IX"] and "Foo" not in raw.foreign_keys
        assert [fk["name"] for fk in raw.foreign_keys["foo"]] == ["Fk"]


def test_small_session_limit_does_not_cut_aggregates(engine: sa.Engine) -> None:
    """The wide table's aggregate is far over 4 KiB; the reader raises the limit for its statements only."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION group_concat_max_len = 4096")
        expected = reflect_mysql.read_rows(conn, None)
        _assert_same(expected, reflect_mysql._read(conn, None, reflect_mysql._aggregated_rows))
        assert conn.exec_driver_sql("SELECT @@SESSION.group_concat_max_len").scalar() == 4096


def test_cut_aggregate_falls_back_to_rows(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reflect_mysql, "_AGGREGATE_MAX_LEN", 4096)
    with engine.connect() as conn:
        params = {"schema": conn.exec_driver_sql("SELECT DATABASE()").scalar()}
        with pytest.raises(reflect_mysql._Unreadable):
            reflect_mysql._aggregated_rows(conn, reflect_mysql._COLUMNS, params)
        _assert_same(reflect_mysql.read_rows(conn, None), reflect_mysql.read(conn, None))


def test_mariadb_before_10_8_reads_no_collation(engine: sa.Engine) -> None:
    """Before 10.8 (no DESC keys) STATISTICS.COLLATION is not read; all else is the same."""
    with engine.connect() as conn:
        expected = reflect_mysql.read_rows(conn, None)
        real = conn.dialect.server_version_info
        conn.dialect.server_version_info = (10, 6, 0)  # type: ignore[misc]
        try:
            older = reflect_mysql.read(conn, None)
        finally:
            conn.dialect.server_version_info = real  # type: ignore[misc]
    for indexes in expected.indexes.values():
        for index in indexes:
            index.pop("column_sorting", None)
    _assert_same(expected, older)
