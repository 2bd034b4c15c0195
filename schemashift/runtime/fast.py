"""Fast `status` and no-op `upgrade` at head: no SQLAlchemy, no migration modules.

The CLI calls `fast_status` / `fast_upgrade` before the full path. They answer
only when everything is clean and certain: the manifest matches the folder
(`manifest.verified_entries`), the database's version table lists exactly the
manifest's revisions with the same checksums, all applied, and (for `status`)
the live catalog fingerprint equals the one stored when the full drift check
last found no drift at head. Then they print what the full path would print and
return the exit code; on any doubt (an unusual URL, a driver error, a missing
table or column, pending or partial migrations, a stale manifest, …) they return
None and the full path runs and gives its proper answers and errors.

The database is reached through the DB-API driver the URL names (sqlite3,
pymysql) or libpq directly for ``postgresql+psycopg`` (see `schemashift.support.libpq`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from schemashift.errors import mask_secrets
from schemashift.runtime.fingerprint import fingerprint, parse_stored
from schemashift.history.manifest import Summary, pairs_digest

_URL = re.compile(
    r"(?P<driver>[\w+]+)://(?:(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@)?"
    r"(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/:?]+))?(?::(?P<port>[^/?]*))?(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?$",
    re.S,
)
_BACKENDS = {
    "sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgresql+psycopg": "postgresql",
    "mysql+pymysql": "mysql", "mariadb+pymysql": "mysql",
    # async drivers: the fast path reads the same catalogue through the sync client library
    "sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql", "mysql+aiomysql": "mysql",
    "mysql+asyncmy": "mysql",
}
CONNECT_TIMEOUT = 5
_PLAIN = re.compile(r"[A-Za-z0-9_./~-]*")


@dataclass
class Target:
    """A parsed database URL the fast path can use."""

    backend: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None
    query: dict[str, str] = field(default_factory=dict)


def parse_url(url: str) -> Target | None:
    """The parts of a sqlite / postgresql+psycopg / mysql+pymysql URL; None for anything else."""
    match = _URL.match(url.strip())
    if not match or match["driver"] not in _BACKENDS:
        return None
    query: dict[str, str] = {}
    if match["query"]:
        from urllib.parse import parse_qsl

        for key, value in parse_qsl(match["query"]):
            if key in query:
                return None  # repeated keys (several hosts, …): not for the fast path
            query[key] = value
    try:
        port = int(match["port"]) if match["port"] else None
    except ValueError:
        return None

    def text(name: str) -> str | None:
        value = match[name]
        if value is None or "%" not in value:
            return value
        from urllib.parse import unquote

        return unquote(value)

    return Target(_BACKENDS[match["driver"]], match["ipv6"] or match["host"], port, text("user"), text("password"),
                  text("database"), query)


# -- connections --------------------------------------------------------------


def connect(target: Target) -> Any:
    """A DB-API connection for `target` (raises on any failure)."""
    if target.backend == "sqlite":
        return _sqlite(target)
    if target.backend == "postgresql":
        from schemashift.support.libpq import Connection

        params = {"host": target.host, "port": str(target.port) if target.port else None, "user": target.user,
                  "password": target.password, "dbname": target.database, "connect_timeout": str(CONNECT_TIMEOUT)}
        params.update(target.query)
        return Connection({key: value for key, value in params.items() if value is not None})
    import pymysql

    if set(target.query) - {"charset", "unix_socket"}:
        raise ValueError("connection options the fast path does not pass on")
    options: dict[str, Any] = {"host": target.host or "localhost", "user": target.user, "password": target.password or "",
                               "database": target.database, "connect_timeout": CONNECT_TIMEOUT,
                               "read_timeout": CONNECT_TIMEOUT, "write_timeout": CONNECT_TIMEOUT,
                               "charset": target.query.get("charset", "utf8mb4")}
    if target.port:
        options["port"] = target.port
    if "unix_socket" in target.query:
        options["unix_socket"] = target.query["unix_socket"]
    return pymysql.connect(**options)


def _sqlite(target: Target) -> Any:
    import sqlite3

    database = target.database
    if target.query or not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError("not a plain SQLite file")
    if not _PLAIN.fullmatch(database):
        from urllib.parse import quote

        database = quote(database)
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT)


# -- the checks ---------------------------------------------------------------------


@dataclass
class Clean:
    """What the fast path found: the database is at `head`, everything applied and unedited."""

    env: str
    url: str
    head: str
    schema_matches: bool


def _quote(name: str, backend: str) -> str:
    mark = "`" if backend == "mysql" else '"'
    return mark + name.replace(mark, mark * 2) + mark


def _summary(cursor: Any, backend: str, table: str, schema: str | None, head: str,
             drift: bool) -> tuple[int, int, str, str | None]:
    """Rows, rows not applied, a digest of the sorted ``revision checksum`` pairs, the head's fingerprint."""
    qualified = _quote(table, backend) if not schema else f"{_quote(schema, backend)}.{_quote(table, backend)}"
    if backend == "sqlite":  # reading the rows is cheap here
        columns = "revision, checksum, state" + (", fingerprint" if drift else "")
        cursor.execute(f"SELECT {columns} FROM {qualified}")
        rows = cursor.fetchall()
        stored = next((row[3] for row in rows if row[0] == head), None) if drift else None
        pairs = pairs_digest(f"{row[0]} {row[1]}" for row in rows)
        return len(rows), sum(row[2] != "applied" for row in rows), pairs, stored
    fingerprint_sql = "MAX(CASE WHEN revision = %s THEN fingerprint END)" if drift else "NULL"
    if backend == "postgresql":
        pairs_sql = "md5(string_agg(revision || ' ' || checksum, ',' ORDER BY revision COLLATE \"C\"))"
    else:
        cursor.execute("SET SESSION group_concat_max_len = 4294967295")
        pairs_sql = "MD5(GROUP_CONCAT(CONCAT(revision, ' ', checksum) ORDER BY BINARY revision SEPARATOR ','))"
    cursor.execute(f"SELECT COUNT(*), SUM(CASE WHEN state = 'applied' THEN 0 ELSE 1 END), {pairs_sql}, {fingerprint_sql} "
                   f"FROM {qualified}", [head] if drift else [])
    count, unapplied, digest, stored = cursor.fetchone()
    return int(count), int(unapplied or 0), digest or "", stored


def check(args: Any, *, drift: bool) -> Clean | None:
    """The clean state of the database named by `args` (CLI options), or None when not certain."""
    try:
        return _check(args, drift=drift)
    except Exception:  # noqa: BLE001 - the fast path never fails a command: the full path runs instead
        return None


def _check(args: Any, *, drift: bool) -> Clean | None:
    from schemashift.history import manifest
    from schemashift.config import load_config

    config = load_config(args.config)  # a configuration error: the full path reports it
    env = config.env(args.env, url=args.url)
    url = args.url or env.url
    target = parse_url(url) if url else None
    if target is None or (env.schema and target.backend != "postgresql"):
        return None
    summary = manifest.verified_summary(config.migrations_dir, config.root)
    if summary is None or summary.head is None:
        return None
    connection = connect(target)  # a driver error: the full path reports it properly
    try:
        return _check_database(connection, target, env, summary, drift, mask_secrets(url))
    finally:
        connection.close()


def _check_database(connection: Any, target: Target, env: Any, expected: "Summary", drift: bool,
                    masked: str) -> Clean | None:
    cursor = connection.cursor()
    if env.schema:  # in a transaction of its own: a session SET would stay on a pooler's server connection
        cursor.execute("BEGIN")
        cursor.execute(f"SET LOCAL search_path TO {_quote(env.schema, 'postgresql')}")
    head = expected.head
    count, unapplied, digest, value = _summary(cursor, target.backend, env.version_table, env.schema, head, drift)
    if count != expected.count or unapplied or digest != expected.pairs:
        return None  # pending, partial, edited, unknown or missing revisions: the full path explains
    matches = False
    if drift:
        stored = parse_stored(value)
        if stored is None:
            return None
        digest, extra = stored
        exclude = [env.version_table, f"{env.version_table}_history", f"{env.version_table}_lock"]  # runtime.locks.lock_table_name, not imported: no SQLAlchemy here
        if fingerprint(cursor, target.backend, [None, *extra], exclude) != digest:
            return None
        matches = True
    return Clean(env.name, masked, head, matches)


# -- the commands ---------------------------------------------------------------------


def fast_status(args: Any, out: Callable[[str], None] = print) -> int | None:
    """Print `status` and return 0 when the database is clean at head; else None (run the full path)."""
    clean = check(args, drift=True)
    if clean is None:
        return None
    report = {"env": clean.env, "url": clean.url, "current": clean.head, "head": clean.head, "pending": [],
              "problems": [], "schema_matches": True, "differences": [], "unknown_revisions": [], "notes": [],
              "exit_code": 0}
    if getattr(args, "json", False):
        import json

        out(json.dumps(report, indent=2, default=str))
    else:
        for line in (f"Environment: {clean.env} ({clean.url})", f"Current revision: {clean.head}",
                     f"Head revision: {clean.head}", "Pending: 0", "Live schema matches the migrations."):
            out(line)
    return 0


def fast_upgrade(args: Any, out: Callable[[str], None] = print) -> int | None:
    """Print the no-op answer of `upgrade` to head and return 0 when nothing is pending; else None."""
    if getattr(args, "sql", False) or getattr(args, "dry_run", False) or getattr(args, "target", "head") != "head":
        return None
    if getattr(args, "from_revision", None) is not None:
        return None
    clean = check(args, drift=False)
    if clean is None:
        return None
    out(f"Nothing to do: the database is at {clean.head}.")
    return 0
