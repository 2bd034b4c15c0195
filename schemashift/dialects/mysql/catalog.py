"""MySQL's and MariaDB's catalogue on a plain DB-API cursor (pymysql): fingerprint and fast-path facts.

The fingerprint's facts come from information_schema (TABLE_CONSTRAINTS adds
nothing there: keys are in STATISTICS, foreign keys in KEY_COLUMN_USAGE and
REFERENTIAL_CONSTRAINTS; view definitions from VIEWS, triggers from TRIGGERS).
Standard library only (pymysql is imported to connect).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemashift.dialects.catalog import CONNECT_TIMEOUT, Target, server_digest

SUPPORTS_SCHEMAS = False
#: Not portable: every fact names its database, so the same schema in two databases has two fingerprints.
PORTABLE_FINGERPRINT = False
QUOTE = "`"
PAIRS_SQL = "MD5(GROUP_CONCAT(CONCAT(revision, ' ', checksum) ORDER BY BINARY revision SEPARATOR ','))"


def connect(target: Target) -> Any:
    """A pymysql connection for `target`; ValueError for query options it does not pass on."""
    import pymysql

    if set(target.query) - {"charset", "unix_socket"}:
        raise ValueError("connection options the fast path does not pass on")
    options: dict[str, Any] = {"host": target.host or "localhost", "user": target.user,
                               "password": target.password or "", "database": target.database,
                               "connect_timeout": CONNECT_TIMEOUT, "read_timeout": CONNECT_TIMEOUT,
                               "write_timeout": CONNECT_TIMEOUT,
                               "charset": target.query.get("charset", "utf8mb4")}
    if target.port:
        options["port"] = target.port
    if "unix_socket" in target.query:
        options["unix_socket"] = target.query["unix_socket"]
    return pymysql.connect(**options)


def prepare(cursor: Any) -> None:
    """Lift GROUP_CONCAT's length limit for the session (the aggregates concatenate every row)."""
    cursor.execute("SET SESSION group_concat_max_len = 4294967295")


def use_schema(cursor: Any, schema: str) -> None:
    """Not supported: an environment's schema is PostgreSQL's."""
    raise ValueError("schemas are not read on this database")


def fingerprint_text(cursor: Any, schemas: Sequence[str | None], exclude: Sequence[str]) -> str:
    """MD5 of the information_schema facts of `schemas` (None: ``DATABASE()``), computed by the server."""
    prepare(cursor)
    return server_digest(cursor, *_query(schemas, exclude))


_FACTS = """
SELECT MD5(GROUP_CONCAT(fact ORDER BY fact SEPARATOR '|')) FROM (
    SELECT CONCAT_WS(' ', 'tab', QUOTE(TABLE_SCHEMA), QUOTE(TABLE_NAME), QUOTE(TABLE_TYPE), QUOTE(ENGINE),
                     QUOTE(TABLE_COLLATION), QUOTE(TABLE_COMMENT)) AS fact
    FROM information_schema.TABLES WHERE {where}
    UNION ALL
    SELECT CONCAT_WS(' ', 'col', QUOTE(TABLE_SCHEMA), QUOTE(TABLE_NAME), ORDINAL_POSITION, QUOTE(COLUMN_NAME),
                     QUOTE(COLUMN_TYPE), QUOTE(IS_NULLABLE), QUOTE(COLUMN_DEFAULT), QUOTE(EXTRA),
                     QUOTE(CHARACTER_SET_NAME), QUOTE(COLLATION_NAME), QUOTE(COLUMN_COMMENT),
                     QUOTE(GENERATION_EXPRESSION))
    FROM information_schema.COLUMNS WHERE {where}
    UNION ALL
    SELECT CONCAT_WS(' ', 'idx', QUOTE(TABLE_SCHEMA), QUOTE(TABLE_NAME), QUOTE(INDEX_NAME), NON_UNIQUE, SEQ_IN_INDEX,
                     QUOTE(COLUMN_NAME), QUOTE(SUB_PART), QUOTE(COLLATION), QUOTE(INDEX_TYPE), QUOTE(INDEX_COMMENT))
    FROM information_schema.STATISTICS WHERE {where}

    UNION ALL
    SELECT CONCAT_WS(' ', 'key', QUOTE(TABLE_SCHEMA), QUOTE(TABLE_NAME), QUOTE(CONSTRAINT_NAME), ORDINAL_POSITION,
                     QUOTE(COLUMN_NAME), QUOTE(REFERENCED_TABLE_SCHEMA), QUOTE(REFERENCED_TABLE_NAME),
                     QUOTE(REFERENCED_COLUMN_NAME))
    FROM information_schema.KEY_COLUMN_USAGE WHERE {where}
    UNION ALL
    SELECT CONCAT_WS(' ', 'ref', QUOTE(CONSTRAINT_SCHEMA), QUOTE(TABLE_NAME), QUOTE(CONSTRAINT_NAME),
                     QUOTE(UPDATE_RULE), QUOTE(DELETE_RULE), QUOTE(REFERENCED_TABLE_NAME))
    FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE {where_constraint}
    UNION ALL
    SELECT CONCAT_WS(' ', 'chk', QUOTE(CONSTRAINT_SCHEMA), QUOTE(CONSTRAINT_NAME), QUOTE(CHECK_CLAUSE))
    FROM information_schema.CHECK_CONSTRAINTS WHERE {schema_constraint}
    UNION ALL
    SELECT CONCAT_WS(' ', 'view', QUOTE(TABLE_SCHEMA), QUOTE(TABLE_NAME), QUOTE(VIEW_DEFINITION))
    FROM information_schema.VIEWS WHERE {where}
    UNION ALL
    SELECT CONCAT_WS(' ', 'trg', QUOTE(TRIGGER_SCHEMA), QUOTE(TRIGGER_NAME), QUOTE(EVENT_OBJECT_TABLE),
                     QUOTE(ACTION_TIMING), QUOTE(EVENT_MANIPULATION), ACTION_ORDER, QUOTE(ACTION_STATEMENT))
    FROM information_schema.TRIGGERS WHERE {trigger_where}
) AS facts
"""



def _query(schemas: Sequence[str | None], exclude: Sequence[str]) -> tuple[str, list[str]]:
    schema_terms = ", ".join("DATABASE()" if schema is None else "%s" for schema in schemas) or "NULL"
    schema_params = [schema for schema in schemas if schema is not None]
    table_terms = ", ".join("%s" for _ in exclude) or "NULL"
    tables = f"TABLE_NAME NOT IN ({table_terms}) AND LEFT(TABLE_NAME, 13) <> '_schemashift_'"
    where = f"TABLE_SCHEMA IN ({schema_terms}) AND {tables}"
    where_constraint = f"CONSTRAINT_SCHEMA IN ({schema_terms}) AND {tables}"
    schema_constraint = f"CONSTRAINT_SCHEMA IN ({schema_terms})"
    trigger_where = f"TRIGGER_SCHEMA IN ({schema_terms})"
    per_table = schema_params + list(exclude)
    params = per_table * 5 + schema_params + per_table + schema_params
    sql = _FACTS.format(where=where, where_constraint=where_constraint, schema_constraint=schema_constraint,
                        trigger_where=trigger_where)
    return sql, params
