"""PostgreSQL's catalogue on a plain DB-API cursor (libpq, psycopg): fingerprint and fast-path facts.

The fingerprint's facts are catalog rows with every object id spelled by name
(types by `format_type`, defaults, checks, indexes and triggers deparsed by the
server, referenced tables by ``regclass``): the same schema built in two databases
has the same fingerprint, which lets a rebuilt database reuse a drift check the
first one passed (`schemashift.services.compare.clean_fingerprints`). Functions
(as `pg_get_functiondef` prints them: what the drift check compares, attributes such as
SECURITY DEFINER, STRICT or COST included), row-level-security policies (roles by name)
and extensions are facts too. The fast
path connects through libpq directly (`schemashift.support.libpq`). Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemashift.dialects.catalog import CONNECT_TIMEOUT, Target, quote, server_digest

SUPPORTS_SCHEMAS = True
#: The fingerprint of a schema is the same in every database holding it (object ids are spelled by name).
PORTABLE_FINGERPRINT = True
QUOTE = '"'
PAIRS_SQL = "md5(string_agg(revision || ' ' || checksum, ',' ORDER BY revision COLLATE \"C\"))"


def connect(target: Target) -> Any:
    """A libpq connection for `target` (its query options passed on as connection parameters)."""
    from schemashift.support.libpq import Connection

    params = {"host": target.host, "port": str(target.port) if target.port else None, "user": target.user,
              "password": target.password, "dbname": target.database, "connect_timeout": str(CONNECT_TIMEOUT)}
    params.update(target.query)
    return Connection({key: value for key, value in params.items() if value is not None})


def prepare(cursor: Any) -> None:
    """Nothing: the aggregates need no session setting."""


def use_schema(cursor: Any, schema: str) -> None:
    """Make `schema` the current schema, in a transaction of its own (a session ``SET`` would stay on a
    transaction pooler's server connection, for other clients too)."""
    cursor.execute("BEGIN")
    cursor.execute(f"SET LOCAL search_path TO {quote(schema, QUOTE)}")


def fingerprint_text(cursor: Any, schemas: Sequence[str | None], exclude: Sequence[str]) -> str:
    """md5 of the catalogue rows of `schemas` (None: ``current_schema()``), computed by the server."""
    return server_digest(cursor, *_query(schemas, exclude))


_FACTS = """
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
     SELECT r.nspname, r.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attndims,
            a.attnotnull, a.attidentity, a.attgenerated, co.collname, pg_get_expr(ad.adbin, ad.adrelid) AS def,
            ds.description
     FROM rels r
     JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     LEFT JOIN pg_collation co ON co.oid = a.attcollation
     LEFT JOIN notes ds ON ds.objoid = r.oid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = a.attnum) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.conname) FROM (
     SELECT r.nspname, r.relname, c.conname, c.contype, c.condeferrable, c.condeferred, c.convalidated, c.conkey,
            c.confrelid::regclass::text AS refers, c.confkey, c.confupdtype, c.confdeltype, c.confmatchtype,
            pg_get_constraintdef(c.oid) AS expr, ds.description
     FROM rels r JOIN pg_constraint c ON c.conrelid = r.oid
     LEFT JOIN notes ds ON ds.objoid = c.oid AND ds.classoid = 'pg_constraint'::regclass AND ds.objsubid = 0) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.index) FROM (
     SELECT r.nspname, r.relname, ic.relname AS index, i.indnkeyatts, i.indisunique, i.indisprimary,
            i.indisvalid, i.indisexclusion, i.indimmediate, i.indkey, pg_get_indexdef(i.indexrelid) AS def,
            ds.description
     FROM rels r JOIN pg_index i ON i.indrelid = r.oid JOIN pg_class ic ON ic.oid = i.indexrelid
     LEFT JOIN notes ds ON ds.objoid = i.indexrelid AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname) FROM (
     SELECT r.nspname, r.relname, format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement, s.seqmax,
            s.seqmin, s.seqcache, s.seqcycle
     FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.typname, x.enumsortorder) FROM (
     SELECT n.nspname, t.typname, e.enumsortorder, e.enumlabel
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
     WHERE n.nspname::text IN (SELECT nspname FROM wanted)) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.proname, x.args) FROM (
     SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid) AS args,
            format_type(p.prorettype, NULL) AS returns, l.lanname, p.prokind, p.provolatile, p.proconfig, p.prosrc,
            CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END AS def
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
     WHERE n.nspname::text IN (SELECT nspname FROM wanted)) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.tgname) FROM (
     SELECT r.nspname, r.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid) AS def
     FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.nspname, x.relname, x.polname) FROM (
     SELECT r.nspname, r.relname, c.relrowsecurity, p.polname, p.polcmd, p.polpermissive,
            p.polroles::regrole[]::text AS roles, pg_get_expr(p.polqual, p.polrelid) AS qual,
            pg_get_expr(p.polwithcheck, p.polrelid) AS checks
     FROM rels r JOIN pg_class c ON c.oid = r.oid LEFT JOIN pg_policy p ON p.polrelid = r.oid
     WHERE c.relrowsecurity OR p.polname IS NOT NULL) x),
  (SELECT string_agg(x::text, chr(10) ORDER BY x.extname) FROM (
     SELECT e.extname, e.extversion, e.extnamespace::regnamespace::text AS namespace FROM pg_extension e) x)
))
"""



def _query(schemas: Sequence[str | None], exclude: Sequence[str]) -> tuple[str, list[str]]:
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
    sql = _FACTS.format(schemas=", ".join(wanted) or "(NULL::text)", skipped=", ".join(skipped) or "(NULL::text)")
    return sql, params
