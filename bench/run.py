"""Benchmark schemashift against Alembic on SQLite, PostgreSQL and MariaDB (see bench/README.md).

    python bench/run.py                 # full size: N=2000 tables, K=1000 and 3000 revisions
    python bench/run.py --quick         # CI smoke size (a minute or two), no timing assertions
    python bench/run.py --backends sqlite --profile --commit-results

Writes OUT/results.json and OUT/RESULTS.md; `--commit-results` copies the Markdown
to bench/RESULTS.md. Every database it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import objects  # noqa: E402
import report  # noqa: E402
import fleet  # noqa: E402
import runner  # noqa: E402
import stall  # noqa: E402
import stall_upgrade  # noqa: E402
import tasks  # noqa: E402
from dbs import BACKENDS, Databases, SERVER_URLS, server_error  # noqa: E402

TASKS = ("cli", "diff", "generate", "chain", "objects", "fleet", "runner")
#: Tasks run only when named in --tasks (never by default or --quick).
EXTRA_TASKS = ("stall", "stall-upgrade")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size: N=50, K=50, few repeats")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma list of sqlite, postgresql, mysql")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="folder for results.json and RESULTS.md")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS + EXTRA_TASKS)}")
    parser.add_argument("--n", type=int, help="number of tables for the diff and generate tasks")
    parser.add_argument("--k", help="comma list of chain lengths (revisions) for upgrade/status/offline")
    parser.add_argument("--tenants", type=int, help="tenant schemas for the fleet task (PostgreSQL)")
    parser.add_argument("--stall-rows", type=int, help=f"rows of the table in the stall tasks (default {stall.ROWS:,}; "
                                                        f"stall-upgrade: {stall_upgrade.ROWS:,})")
    parser.add_argument("--gen-revisions", type=int, help="history length for the generate task")
    parser.add_argument("--repeat", type=int, help="runs per measurement (overrides every repeat count)")
    parser.add_argument("--profile", action="store_true", help="also run schemashift under cProfile (OUT/profiles)")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects (databases are dropped)")
    parser.add_argument("--commit-results", action="store_true", help="copy RESULTS.md to bench/RESULTS.md")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for name, allowed in (("backends", BACKENDS), ("tasks", TASKS + EXTRA_TASKS)):
        unknown = [item for item in getattr(args, name) if item not in allowed]
        if unknown:
            parser.error(f"unknown {name}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return args


def sizes_of(args: argparse.Namespace) -> tasks.Sizes:
    """The Sizes for the options given."""
    sizes = tasks.QUICK if args.quick else tasks.FULL
    if args.n:
        sizes = replace(sizes, n=args.n)
    if args.k:
        sizes = replace(sizes, ks=tuple(sorted(int(k) for k in args.k.split(","))))
    if args.gen_revisions:
        sizes = replace(sizes, gen_revisions=args.gen_revisions)
    if args.tenants:
        sizes = replace(sizes, tenants=args.tenants)
    if args.repeat:
        sizes = replace(sizes, repeat_cli=args.repeat, repeat_diff=args.repeat, repeat_read=args.repeat,
                        repeat_generate=args.repeat)
    return sizes


def log(line: str) -> None:
    """Progress output."""
    print(line, flush=True)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=BENCH_DIR,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{'+changes' if dirty else ''}" if commit else "unknown"


def _server_versions(backends: list[str]) -> str:
    import sqlalchemy as sa

    versions = []
    for backend in backends:
        if backend == "sqlite":
            import sqlite3

            versions.append(f"SQLite {sqlite3.sqlite_version}")
            continue
        try:
            engine = sa.create_engine(SERVER_URLS[backend], poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                text = conn.exec_driver_sql("SELECT version()").scalar()
            engine.dispose()
            versions.append(f"{backend} {str(text).split(' on ')[0]}")
        except Exception as exc:  # noqa: BLE001
            versions.append(f"{backend} (unknown: {type(exc).__name__})")
    return ", ".join(versions)


def metadata(args: argparse.Namespace, sizes: tasks.Sizes, backends: list[str], argv: list[str]) -> dict[str, Any]:
    """What the run was and where it ran."""
    return {
        "command": " ".join(["python", "bench/run.py", *map(shlex.quote, argv)]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs", "cpus": os.cpu_count() or 1,
        "python": platform.python_version(), "sqlalchemy": _version("sqlalchemy"), "alembic": _version("alembic"),
        "schemashift": f"{_version('schemashift')} ({_git_commit()})",
        "servers": _server_versions(backends),
        "sizes": {"n": sizes.n, "ks": list(sizes.ks), "gen_revisions": sizes.gen_revisions},
        "sizes_text": f"N={sizes.n}, K={','.join(map(str, sizes.ks))}, generate history={sizes.gen_revisions}, "
                      f"tenants={sizes.tenants}",
        "backends": backends, "errors": [], "load_before": _load(),
    }


def _load() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def step(meta: dict[str, Any], name: str, action: Callable[[], Any]) -> Any:
    """Run one part of the benchmark; an exception is logged, remembered, and the run continues."""
    try:
        return action()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - keep measuring the rest
        message = f"{name}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        meta["errors"].append(message)
        log(f"  ERROR {message}")
        return None


def run_all(bench: tasks.Bench, selected: list[str], meta: dict[str, Any], stall_rows: int | None = None) -> None:
    """Every selected task on every backend."""
    if "cli" in selected:
        step(meta, "CLI start", lambda: tasks.cli_start(bench))
    diff_urls: dict[str, str] = {}
    if "diff" in selected or "generate" in selected:
        for backend in bench.backends:
            bench.log(f"Live diff on {backend} (N={bench.sizes.n})")
            url = step(meta, f"create diff database on {backend}", lambda: tasks.prepare_diff_database(bench, backend))
            if url is None:
                continue
            diff_urls[backend] = url
            if "diff" in selected:
                step(meta, f"live diff on {backend}", lambda: tasks.live_diff(bench, backend, url))
    if "generate" in selected:
        bench.log(f"generate (N={bench.sizes.n}, history of {bench.sizes.gen_revisions} revisions)")
        written = step(meta, "write generate projects", lambda: tasks.write_generate_projects(bench))
        if written is not None:
            ss_project, scripts = written
            ss_timing = tasks.generate_schemashift(bench, ss_project)
            for backend, url in diff_urls.items():
                step(meta, f"generate on {backend}", lambda: tasks.generate(bench, backend, url, scripts, ss_timing))
    if "objects" in selected:
        for backend in bench.backends:
            bench.log(f"{objects.COUNT} views, functions and triggers on {backend}")
            step(meta, f"objects on {backend}", lambda: objects.objects_task(bench, backend))
    if "chain" in selected:
        for k in bench.sizes.ks:
            bench.log(f"Revision chain K={k}")
            chain_projects = step(meta, f"write chain K={k}", lambda: tasks.write_chain_projects(bench, k))
            if chain_projects is None:
                continue
            for backend in bench.backends:
                step(meta, f"chain K={k} on {backend}", lambda: tasks.chain(bench, backend, chain_projects))
    if "runner" in selected:
        for backend in bench.backends:
            bench.log(f"pytest runner: {runner.K} single steps vs one upgrade on {backend}")
            step(meta, f"runner on {backend}", lambda: runner.runner_task(bench, backend))
    if "fleet" in selected and "postgresql" in bench.backends:  # schema per tenant: PostgreSQL
        bench.log(f"Tenant fleet T={bench.sizes.tenants} on postgresql")
        step(meta, "fleet on postgresql", lambda: fleet.fleet(bench, "postgresql"))
    if "stall" in selected:
        rows = stall_rows or stall.ROWS
        for backend in (b for b in stall.BACKENDS if b in bench.backends):
            bench.log(f"Writer stall, {rows:,} rows, {stall.WRITERS} writers, on {backend}")
            step(meta, f"stall on {backend}", lambda: stall.stall(bench, backend, rows))
    if "stall-upgrade" in selected:
        rows = stall_rows or stall_upgrade.ROWS
        for backend in (b for b in stall.BACKENDS if b in bench.backends):
            bench.log(f"Writer stall over a whole upgrade, {rows:,} rows, {stall.WRITERS} writers, on {backend}")
            step(meta, f"stall-upgrade on {backend}", lambda: stall_upgrade.stall_upgrade(bench, backend, rows))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (0 even when schemashift steps failed)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    sizes = sizes_of(args)
    backends = []
    for backend in args.backends:
        error = server_error(backend)
        if error:
            log(f"SKIPPING {backend}: server not reachable ({error})")
        else:
            backends.append(backend)
    meta = metadata(args, sizes, backends, argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    profile_dir = out / "profiles" if args.profile else None
    if profile_dir:
        profile_dir.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="schemashift-bench-"))
    databases = Databases(work)
    bench = tasks.Bench(sizes, backends, work, databases, log, profile_dir)
    log(f"schemashift benchmark: {meta['sizes_text']}, backends {', '.join(backends) or 'none'}; work dir {work}")
    started = time.perf_counter()
    try:
        run_all(bench, args.tasks, meta, args.stall_rows)
    except KeyboardInterrupt:
        meta["errors"].append("interrupted")
        log("interrupted: dropping databases")
    finally:
        meta["errors"] += databases.drop_all()
        if args.keep:
            log(f"kept the generated projects in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["load_after"] = _load()
    growth = tasks.growth(bench.results)
    report.write_json(out / "results.json", meta, bench.results, growth)
    text = report.markdown(meta, bench.results, growth)
    if stall.RESULTS:
        (out / "stall.json").write_text(json.dumps(stall.RESULTS, indent=2), encoding="utf-8")
        text += "\n## Writer stall\n\n" + stall.markdown(stall.RESULTS)
    if stall_upgrade.RESULTS:
        (out / "stall_upgrade.json").write_text(json.dumps(stall_upgrade.RESULTS, indent=2), encoding="utf-8")
        text += "\n## Writer stall over a whole upgrade\n\n" + stall_upgrade.markdown(stall_upgrade.RESULTS)
    (out / "RESULTS.md").write_text(text, encoding="utf-8")
    log("")
    log(text)
    log(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'} in {meta['seconds']} s")
    if args.commit_results:
        shutil.copyfile(out / "RESULTS.md", BENCH_DIR / "RESULTS.md")
        log(f"copied to {BENCH_DIR / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
