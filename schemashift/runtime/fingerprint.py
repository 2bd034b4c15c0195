"""Catalog fingerprints: one hash of every catalog fact of the user's tables, in one query per backend.

The fast `status` compares the live fingerprint with the one stored (in the
version table) when the full drift check last found the live schema matching
the migrations; equal fingerprints mean nothing in the catalog changed since.
The queries read what the differ can see and more (columns with their types,
nullability, defaults, identity and generated expressions, collations and
comments; constraints; indexes; sequences; enum labels; views, functions, triggers, row-level-security
policies and extensions), never data or
statistics, and skip schemashift's own tables (the version and history tables
and ``_schemashift_*`` backups). Any extra fact only makes the fast path fall
back to the full check more often, never report a false match. On PostgreSQL
the facts are the raw catalog rows (type oids and modifiers, stored expression
trees, key column numbers), which is several times cheaper than deparsing them
and changes whenever a deparsed definition would; on MariaDB they come from
information_schema (TABLE_CONSTRAINTS adds nothing there: keys are in
STATISTICS, foreign keys in KEY_COLUMN_USAGE and REFERENTIAL_CONSTRAINTS).

The code runs on a plain DB-API cursor (sqlite3, psycopg, pymysql, or the tiny
libpq cursor of `schemashift.runtime.fast`) so both paths compute the same value; it
imports only the standard library.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

#: Prefix of the tables where schemashift keeps dropped data.
BACKUP_PREFIX = "_schemashift_"
#: Version of the fingerprint recipe: a stored value of another version never matches.
VERSION = "2"


def fingerprint(cursor: Any, backend: str, schemas: Sequence[str | None], exclude: Sequence[str]) -> str:
    """sha256 hex of the catalog facts of `schemas` (None: the session's current schema) on `backend`.

    `backend` is ``sqlite``, ``postgresql`` or ``mysql`` (MariaDB too); `exclude`
    names tables to leave out besides ``_schemashift_*``. ValueError for another backend.
    """
    if backend == "sqlite":
        text = _sqlite(cursor, schemas, exclude)
    elif backend == "postgresql":
        text = _server_digest(cursor, *_postgresql_query(schemas, exclude))
    elif backend in ("mysql", "mariadb"):
        cursor.execute("SET SESSION group_concat_max_len = 4294967295")
        text = _server_digest(cursor, *_mysql_query(schemas, exclude))
    else:
        raise ValueError(f"no catalog fingerprint for {backend!r}")
    scope = json.dumps([backend, VERSION, list(schemas), sorted(exclude)])
    return hashlib.sha256(f"{scope}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()


def stored_value(digest: str, extra_schemas: Sequence[str]) -> str:
    """What the version table keeps: the digest, then the other schemas it covers (JSON) when there are any."""
    if not extra_schemas:
        return digest
    return f"{digest} {json.dumps(list(extra_schemas), separators=(',', ':'))}"


def parse_stored(value: str | None) -> tuple[str, list[str]] | None:
    """(digest, extra schemas) of a stored value; None when there is none or it is not readable."""
    if not value:
        return None
    digest, _, rest = value.partition(" ")
    try:
        extra = json.loads(rest) if rest else []
    except ValueError:
        return None
    if len(digest) != 64 or not isinstance(extra, list) or not all(isinstance(name, str) for name in extra):
        return None
    return digest, extra


def _server_digest(cursor: Any, sql: str, params: list[str]) -> str:
    cursor.execute(sql, params)
    row = cursor.fetchone()
    value = row[0] if row else None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("ascii")
    return value or ""


# -- SQLite ----------------------------------------------------------------------


def _sqlite(cursor: Any, schemas: Sequence[str | None], exclude: Sequence[str]) -> str:
    skipped = set(exclude)
    lines: list[str] = []
    for schema in schemas:
        prefix = "main" if schema is None else '"' + schema.replace('"', '""') + '"'
        cursor.execute(f"SELECT type, name, tbl_name, sql FROM {prefix}.sqlite_master")
        for kind, name, table, sql in cursor.fetchall():
            if name.startswith("sqlite_") or table in skipped or table.startswith(BACKUP_PREFIX):
                continue
            lines.append(json.dumps([schema, kind, name, table, sql]))
    lines.sort()
    return "\n".join(lines)


# -- PostgreSQL --------------------------------------------------------------------

_POSTGRESQL = """
WITH wanted(nspname) AS (VALUES {schemas}),
skipped(relname) AS (VALUES {skipped}),
rels AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname::text IN (SELECT nspname FROM wanted)
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND c.relname::text NOT IN (SELECT relname FROM skipped)
      AND substr(c.relname::text, 1, 13) <> '_schemashift_'
      AND (c.relkind <> 'S' OR NOT EXISTS (
          SELECT 1 FROM pg_depend d JOIN pg_class o ON o.oid = d.refobjid
          WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.objid = c.oid
            AND d.deptype IN ('a', 'i')
            AND (o.relname::text IN (SELECT relname FROM skipped) OR substr(o.relname::text, 1, 13) = '_schemashift_')))
),
notes AS (
    SELECT objoid, classoid, objsubid, description FROM pg_description
    WHERE classoid IN ('pg_class'::regclass, 'pg_constraint'::regclass)
)
SELECT md5(concat_ws(chr(10),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname) FROM (
     SELECT r.nspname, r.relname, r.relkind, ds.description,
            CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(r.oid) END AS view
     FROM rels r LEFT JOIN notes ds ON ds.objoid = r.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.attnum) FROM (
     SELECT r.nspname, r.relname, a.attnum, a.attname, a.atttypid, a.atttypmod, a.attndims, a.attnotnull,
            a.attidentity, a.attgenerated, a.attcollation, ad.adbin::text AS def, ds.description
     FROM rels r
     JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     LEFT JOIN notes ds ON ds.objoid = r.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = a.attnum) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.conname) FROM (
     SELECT r.nspname, r.relname, c.conname, c.contype, c.condeferrable, c.condeferred, c.convalidated, c.conkey,
            c.confrelid, c.confkey, c.confupdtype, c.confdeltype, c.confmatchtype, c.conbin::text AS expr, ds.description
     FROM rels r JOIN pg_constraint c ON c.conrelid = r.oid
     LEFT JOIN notes ds ON ds.objoid = c.oid AND ds.classoid = 'pg_constraint'::regclass AND ds.objsubid = 0) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.index) FROM (
     SELECT r.nspname, r.relname, ic.relname AS index, ic.relam, i.indnkeyatts, i.indisunique, i.indisprimary,
            i.indisexclusion, i.indimmediate, i.indkey, i.indcollation, i.indclass, i.indoption,
            i.indexprs::text AS exprs, i.indpred::text AS pred, ds.description
     FROM rels r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
     LEFT JOIN notes ds ON ds.objoid = i.indexrelid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname) FROM (
     SELECT r.nspname, r.relname, s.seqtypid, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle
     FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.typname, x.enumsortorder) FROM (
     SELECT n.nspname, t.typname, e.enumsortorder, e.enumlabel
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
     WHERE n.nspname::text IN (SELECT nspname FROM wanted)) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.proname, x.args) FROM (
     SELECT n.nspname, p.proname, p.proargtypes::text AS args, p.prorettype, p.prolang, p.prokind, p.provolatile,
            p.proconfig, p.prosrc
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname::text IN (SELECT nspname FROM wanted)) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.tgname) FROM (
     SELECT r.nspname, r.relname, t.tgname, t.tgfoid, t.tgtype, t.tgenabled, t.tgattr::text AS cols,
            t.tgargs::text AS args, t.tgqual::text AS qual
     FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.polname) FROM (
     SELECT r.nspname, r.relname, c.relrowsecurity, p.polname, p.polcmd, p.polpermissive, p.polroles::text AS roles,
            p.polqual::text AS qual, p.polwithcheck::text AS checks
     FROM rels r JOIN pg_class c ON c.oid = r.oid LEFT JOIN pg_policy p ON p.polrelid = r.oid
     WHERE c.relrowsecurity OR p.polname IS NOT NULL) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.extname) FROM (
     SELECT e.extname, e.extversion, e.extnamespace FROM pg_extension e) x)
))
"""


def _postgresql_query(schemas: Sequence[str | None], exclude: Sequence[str]) -> tuple[str, list[str]]:
    params: list[str] = []
    wanted = []
    for schema in schemas:
        if schema is None:
            wanted.append("(current_schema()::text)")
        else:
            wanted.append("(%s::text)")
            params.append(schema)
    skipped = []
    for name in exclude:
        skipped.append("(%s::text)")
        params.append(name)
    sql = _POSTGRESQL.format(schemas=", ".join(wanted) or "(NULL::text)", skipped=", ".join(skipped) or "(NULL::text)")
    return sql, params


# -- MariaDB / MySQL -----------------------------------------------------------------

_MYSQL = """
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


def _mysql_query(schemas: Sequence[str | None], exclude: Sequence[str]) -> tuple[str, list[str]]:
    schema_terms = ", ".join("DATABASE()" if schema is None else "%s" for schema in schemas) or "NULL"
    schema_params = [schema for schema in schemas if schema is not None]
    table_terms = ", ".join("%s" for _ in exclude) or "NULL"
    tables = "TABLE_NAME NOT IN ({0}) AND LEFT(TABLE_NAME, 13) <> '_schemashift_'".format(table_terms)
    where = f"TABLE_SCHEMA IN ({schema_terms}) AND {tables}"
    where_constraint = f"CONSTRAINT_SCHEMA IN ({schema_terms}) AND {tables}"
    schema_constraint = f"CONSTRAINT_SCHEMA IN ({schema_terms})"
    trigger_where = f"TRIGGER_SCHEMA IN ({schema_terms})"
    per_table = schema_params + list(exclude)
    params = per_table * 5 + schema_params + per_table + schema_params
    sql = _MYSQL.format(where=where, where_constraint=where_constraint, schema_constraint=schema_constraint,
                        trigger_where=trigger_where)
    return sql, params
