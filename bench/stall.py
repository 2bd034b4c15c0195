"""The writer-stall task: how long each operation of the catalogue holds up live writers, plain beside safe mode.

For each database (PostgreSQL, MariaDB), each operation of `CATALOGUE` and each
mode (``safe = false``: the plain statements, as Alembic would emit them;
``safe = true``: schemashift's lock-safe forms), on a fresh database:

1. ``upgrade`` to the base migration (tables ``t`` with ROWS rows and ``u``),
   then the rows are inserted with one ``INSERT … SELECT`` (untimed);
2. WRITERS threads, each on its own connection, run short transactions without
   pause: an ``INSERT`` of a new row or an ``UPDATE`` of a random row's ``a``
   (columns no operation changes), each timed from its first statement to its commit;
3. ``schemashift upgrade`` applies the one-change migration in a child process
   while they write.

For the transactions that started while the upgrade ran: the longest (the
longest writer stall), the 99th percentile, how many failed; and the
migration's own time (the version row's ``duration_ms``). A first row per
database measures the writers alone (the machine's noise). The target of issue
14: in safe mode the longest stall stays within ``ddl_lock_timeout`` (LOCK_TIMEOUT
here) plus 100 ms with zero writer errors, wherever the database has a
non-blocking form.
"""

from __future__ import annotations

import json
import random
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbs import SERVER_URLS, _admin
from measure import run_process

if TYPE_CHECKING:
    from tasks import Bench

#: Rows of the table (`--stall-rows` changes it).
ROWS = 1_000_000
#: Writer threads.
WRITERS = 4
#: The environment's `ddl_lock_timeout` in safe mode (seconds).
LOCK_TIMEOUT = 0.5
#: Rows per batch of the safe backfill.
BATCH = 2000
BACKENDS = ("postgresql", "mysql")

BASE = '''
import sqlalchemy as sa

Base = sa.MetaData()
u = sa.Table("u", Base, sa.Column("id", sa.Integer, primary_key=True))
t = sa.Table("t", Base, sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("a", sa.String(80)),
             sa.Column("b", sa.Integer), sa.Column("c", sa.String(20)){columns})
{extra}
'''


def models(columns: str = "", extra: str = "", c: str = "") -> str:
    """The models: BASE with `columns` added to t, `extra` lines after it, t.c replaced by `c` (given)."""
    text = BASE.format(columns=columns, extra=extra)
    return text.replace('sa.Column("c", sa.String(20))', c) if c else text


#: name -> (models after the change, or None for a hand-written migration; plain operations; safe operations)
CATALOGUE: dict[str, tuple[str | None, str, str]] = {
    "add index": (models(extra='sa.Index("ix_t_a", t.c.a)'), "", ""),
    "add unique": (models(extra='sa.UniqueConstraint(t.c.a, name="uq_t_a")'), "", ""),
    "add FK": (models(extra='sa.ForeignKeyConstraint([t.c.b], [u.c.id], name="fk_t_b")'), "", ""),
    "add CHECK": (models(extra='sa.CheckConstraint("b > 0", name="ck_t_b", table=t)'), "", ""),
    "set NOT NULL": (models().replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.Integer, nullable=False)'),
                     "", ""),
    "add column with default": (models(columns=', sa.Column("d", sa.Integer, nullable=False, server_default="0")'),
                                "", ""),
    "widen type": (models(c='sa.Column("c", sa.String(60))'), "", ""),
    "drop column": (models(c=""), "", ""),
    "backfill": (None, "ExecuteSQL(\"UPDATE t SET c = 'filled'\")",
                 f'Backfill("t", values={{"c": "filled"}}, batch_size={BATCH})'),
}

CONFIG = f'''models = "app.models:Base"
migrations = "migrations"
default_env = "bench"

[env.bench]
url = "sqlite:///unused.db"
safe = "${{SAFE:-true}}"
ddl_lock_timeout = {LOCK_TIMEOUT}
ddl_retries = 20
ddl_backoff = 0.1
'''

MIGRATION = '''"""{message}."""
from schemashift.migration import *  # noqa: F401,F403

revision = "{revision}"
parent = "{parent}"
message = "{message}"

operations = [
    {operation},
]
'''


@dataclass
class Writers:
    """WRITERS threads writing to `t` until `stop`; each transaction's start (perf_counter) and duration."""

    url: str
    rows: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for number in range(WRITERS):
            thread = threading.Thread(target=self._write, args=(number,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _write(self, number: int) -> None:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        chance = random.Random(number)
        count = 0
        connection = engine.connect()
        insert = sa.text("INSERT INTO t (a, b) VALUES (:a, 1)")
        update = sa.text("UPDATE t SET a = :a WHERE id = :id")
        try:
            while not self.stop.is_set():
                count += 1
                value = f"w{number}-{count}"
                began = time.perf_counter()
                try:
                    with connection.begin():
                        if count % 2:
                            connection.execute(insert, {"a": value})
                        else:
                            connection.execute(update, {"a": value, "id": chance.randint(1, self.rows)})
                    with self.lock:
                        self.samples.append((began, time.perf_counter() - began))
                except sa.exc.DBAPIError as exc:
                    with self.lock:
                        self.errors.append((began, " ".join(str(exc.orig).split())[:160]))
                    connection.close()
                    connection = engine.connect()
        finally:
            connection.close()
            engine.dispose()

    def during(self, start: float, end: float) -> tuple[list[float], int, str]:
        """Durations of the transactions started in [start, end], the errors among them, the first error."""
        with self.lock:
            times = [duration for began, duration in self.samples if start <= began <= end]
            errors = [text for began, text in self.errors if start <= began <= end]
        return times, len(errors), errors[0] if errors else ""


    def slowest(self, start: float, end: float, count: int = 5) -> list[tuple[float, float]]:
        """The `count` longest transactions started in [start, end]: (seconds after `start`, ms), longest first."""
        with self.lock:
            found = sorted(((duration, began) for began, duration in self.samples if start <= began <= end),
                           reverse=True)[:count]
        return [(round(began - start, 2), round(duration * 1000, 1)) for duration, began in found]


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def write_projects(bench: Bench) -> dict[tuple[str, str], tuple[Path, str]]:
    """One project per catalogue entry and mode: (folder, revision of the base migration they all share)."""
    made: dict[tuple[str, str], tuple[Path, str]] = {}
    first: Path | None = None
    for name, (changed, plain, safe) in CATALOGUE.items():
        for mode in ("plain", "safe"):
            if changed is not None and mode == "safe":
                made[(name, mode)] = made[(name, "plain")]
                continue
            folder = new_project(bench.work / f"stall_{name.replace(' ', '_')}_{mode}")
            if first is None:
                cli(bench, folder, "generate", "-m", "base")
                first = folder
            else:
                for path in (first / "migrations").iterdir():
                    (folder / "migrations" / path.name).write_bytes(path.read_bytes())
            base = revisions(bench, folder)[0]
            if changed is not None:
                (folder / "app" / "models.py").write_text(textwrap.dedent(changed))
                cli(bench, folder, "generate", "-m", "change", "--no-rename")
            else:
                operation = plain if mode == "plain" else safe
                (folder / "migrations" / "0002_change.py").write_text(
                    MIGRATION.format(message="change", revision="5a11c0ffee02", parent=base, operation=operation))
            made[(name, mode)] = (folder, base)
    return made


def new_project(folder: Path) -> Path:
    """`folder` made a project (config, package `app` with the base models, no migration)."""
    (folder / "app").mkdir(parents=True, exist_ok=True)
    (folder / "app" / "__init__.py").write_text("")
    (folder / "migrations").mkdir(exist_ok=True)
    (folder / "schemashift.toml").write_text(CONFIG)
    (folder / "app" / "models.py").write_text(textwrap.dedent(models()))
    return folder


def cli(bench: Bench, folder: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = run_process(bench.schemashift(*args), cwd=folder, env={**bench.env(), **(env or {})}, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"schemashift {' '.join(args)}: {(result.stderr or result.stdout).strip()[-300:]}")
    return result


def revisions(bench: Bench, folder: Path) -> list[str]:
    """The project's revisions, as `history --json` lists them."""
    result = cli(bench, folder, "history", "--json")
    return [item["revision"] for item in json.loads(result.stdout)]


def fill(url: str, backend: str, rows: int) -> None:
    """ROWS rows in t (b = 1 everywhere, distinct a), one row in u."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO u (id) VALUES (1)")
            if backend == "postgresql":
                connection.exec_driver_sql(
                    f"INSERT INTO t (id, a, b, c) SELECT g, 'a' || g, 1, 'c' FROM generate_series(1, {rows}) g")
                connection.exec_driver_sql("SELECT setval(pg_get_serial_sequence('t', 'id'), "
                                           f"{rows})")
            else:
                connection.exec_driver_sql(
                    f"INSERT INTO t (id, a, b, c) SELECT seq, CONCAT('a', seq), 1, 'c' FROM seq_1_to_{rows}")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE t" if backend == "postgresql" else "ANALYZE TABLE t")
    finally:
        engine.dispose()


def drop(bench: Bench, backend: str, url: str) -> None:
    """Drop the database of `url` now (not left for the end of the run)."""
    name = sa.make_url(url).database
    with _admin(backend) as connection:
        force = " WITH (FORCE)" if backend == "postgresql" else ""
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
    bench.dbs.created = [item for item in bench.dbs.created if item != (backend, name)]


def _duration_ms(url: str) -> int | None:
    """The summed `duration_ms` of the migrations applied after the base one (None: none was applied)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text("SELECT SUM(duration_ms) FROM schemashift_version "
                                               "WHERE message LIKE :prefix"), {"prefix": "change%"}).scalar()
            return None if found is None else int(found)
    finally:
        engine.dispose()


def _steps(url: str, started: float) -> list[tuple[str, float, float]]:
    """Each migration after the base, in order: its message and when it ran, in seconds after the wall-clock
    time `started` (its end from ``applied_at``, to the second; its start that less ``duration_ms``)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text("SELECT message, applied_at, duration_ms FROM schemashift_version "
                                               "WHERE message LIKE :prefix ORDER BY applied_at"),
                                       {"prefix": "change%"}).all()
    finally:
        engine.dispose()
    steps = []
    for message, applied_at, duration_ms in found:
        end = applied_at.replace(tzinfo=UTC).timestamp() - started
        steps.append((message, round(end - (duration_ms or 0) / 1000, 1), round(end, 1)))
    return steps


def template(bench: Bench, backend: str, rows: int, project: tuple[Path, str], purpose: str = "stalltmpl") -> str:
    """A database at the base migration of `project` (folder, revision) holding the rows, which each
    measurement copies."""
    url = bench.dbs.create(backend, purpose)
    folder, base = project
    cli(bench, folder, "upgrade", base, "--url", url, env={"SAFE": "false"})
    fill(url, backend, rows)
    return url


def _copy(bench: Bench, backend: str, source: str, purpose: str) -> str:
    """A new database with everything `source` holds (PostgreSQL: as a template, a file copy; MariaDB: table by
    table, ``INSERT … SELECT``, about 8 s for 1,000,000 rows: no cheaper copy without the server's files)."""
    url = bench.dbs.create(backend, purpose)
    name, origin = sa.make_url(url).database, sa.make_url(source).database
    with _admin(backend) as connection:
        if backend == "postgresql":
            connection.exec_driver_sql(f"DROP DATABASE {name}")
            connection.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {origin}")
            return url
        tables = [row[0] for row in connection.exec_driver_sql(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{origin}'")]
        for table in tables:
            connection.exec_driver_sql(f"CREATE TABLE {name}.{table} LIKE {origin}.{table}")
            connection.exec_driver_sql(f"INSERT INTO {name}.{table} SELECT * FROM {origin}.{table}")
    return url


def measure_one(bench: Bench, backend: str, rows: int, name: str, mode: str, folder: Path | None,
                source: str, purpose: str) -> dict[str, Any]:
    """One catalogue entry in one mode (None `folder`: the writers alone, 2 s) on a copy of `source` named
    after `purpose`."""
    url = _copy(bench, backend, source, purpose)
    row: dict[str, Any] = {"backend": backend, "operation": name, "mode": mode, "rows": rows}
    try:
        writers = Writers(url, rows)
        writers.start()
        time.sleep(0.5)  # connections open
        start, started = time.perf_counter(), time.time()
        if folder is None:
            time.sleep(2.0)
            outcome = None
        else:
            outcome = run_process(bench.schemashift("upgrade", "--url", url), cwd=folder,
                                  env={**bench.env(), "SAFE": "true" if mode == "safe" else "false"}, timeout=1800)
        end = time.perf_counter()
        time.sleep(0.3)
        writers.finish()
        times, errors, first_error = writers.during(start, end)
        row.update(longest_ms=round(max(times, default=0.0) * 1000, 1), p99_ms=round(_p99(times) * 1000, 1),
                   writes=len(times), errors=errors, first_error=first_error, wall_s=round(end - start, 2),
                   slowest=writers.slowest(start, end))
        if outcome is not None and outcome.returncode != 0:
            row["refused"] = " ".join((outcome.stderr or outcome.stdout).split())[:400]
            row["unchanged"] = _duration_ms(url) is None
        elif outcome is not None:
            row["migration_ms"] = _duration_ms(url)
            row["steps"] = _steps(url, started)
            if row["migration_ms"] is None:
                bench.log(f"  no duration: {outcome.stdout[-400:]} {outcome.stderr[-400:]}")
    finally:
        drop(bench, backend, url)
    bench.log(f"  {backend} {name} {mode}: {row}")
    return row


write_cache: dict[tuple[str, str], tuple[Path, str]] = {}
#: Every row measured in this process (`run.py` writes them out).
RESULTS: list[dict[str, Any]] = []


def stall(bench: Bench, backend: str, rows: int) -> None:
    """The whole catalogue, plain then safe, on `backend`."""
    if not write_cache:
        write_cache.update(write_projects(bench))
    source = template(bench, backend, rows, next(iter(write_cache.values())))
    index = len(RESULTS)
    RESULTS.append(measure_one(bench, backend, rows, "(writers alone, 2 s)", "-", None, source, f"stall{index}"))
    for name in CATALOGUE:
        for mode in ("plain", "safe"):
            index += 1
            folder, _ = write_cache[(name, mode)]
            try:
                RESULTS.append(measure_one(bench, backend, rows, name, mode, folder, source, f"stall{index}"))
            except Exception as exc:  # noqa: BLE001 - keep measuring the rest
                RESULTS.append({"backend": backend, "operation": name, "mode": mode, "rows": rows,
                                "refused": f"harness: {' '.join(str(exc).split())[:200]}"})
                bench.log(f"  {backend} {name} {mode}: ERROR {exc}")
    drop(bench, backend, source)


#: The issue's bound on the longest stall of one safe operation: the lock timeout + 100 ms.
STALL_LIMIT_MS = LOCK_TIMEOUT * 1000 + 100


def meets(row: dict[str, Any], limit_ms: float = STALL_LIMIT_MS) -> bool | None:
    """The issue's target for a safe row: no error, longest stall within `limit_ms`."""
    if row["mode"] != "safe" or "refused" in row:
        return None
    return bool(row["errors"] == 0 and row["longest_ms"] <= limit_ms)


def _reason(refusal: str) -> str:
    """The refusal's code and reason, without the step label ahead of them."""
    return refusal[max(0, refusal.find("safe mode refuses")):][:240]


def markdown(rows: list[dict[str, Any]], limit_ms: float = STALL_LIMIT_MS) -> str:
    """The results as a Markdown table (safe rows judged against `limit_ms`)."""
    lines = ["| database | operation | mode | longest stall ms | p99 ms | writes | writer errors | migration ms | "
             "target met |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        met = meets(row, limit_ms)
        mark = "" if met is None else ("yes" if met else "**no**")
        migration = row.get("migration_ms", "")
        if "refused" in row:
            unchanged = row.get("unchanged")
            applied = "" if unchanged is None else (" (nothing applied)" if unchanged else " (**some applied**)")
            migration = f"refused{applied}: {_reason(row['refused'])}"
        database = "PostgreSQL" if row["backend"] == "postgresql" else "MariaDB"
        lines.append(f"| {database} | {row['operation']} | {row['mode']} | {row.get('longest_ms', '')} | "
                     f"{row.get('p99_ms', '')} | {row.get('writes', '')} | {row.get('errors', '')} | {migration} | "
                     f"{mark} |")
    errors = [f"- {r['backend']} {r['operation']} {r['mode']}: {r['first_error']}" for r in rows if r.get("first_error")]
    return "\n".join(lines + (["", "First writer error of each row with errors:", *errors] if errors else [])) + "\n"


__all__ = ["BACKENDS", "CATALOGUE", "RESULTS", "ROWS", "Writers", "cli", "drop", "markdown", "measure_one", "meets",
           "models", "new_project", "revisions", "stall", "template"]

if __name__ == "__main__":  # pragma: no cover - run through bench/run.py
    sys.exit("run: python bench/run.py --tasks stall [--stall-rows N]")
