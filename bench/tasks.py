"""The benchmark tasks: each measures Alembic and schemashift doing the same job and records one row per case.

A schemashift step that fails (the core is still being built) is recorded as
"failed: <one line>" and the run goes on; the Alembic side never depends on it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa

import projects
from dbs import BACKENDS, Databases
from measure import Sample, Timing, failed, run_process, time_process
from synth import build_metadata, chain_steps, expected_changes, write_models_module

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
#: Models module name used inside generated projects.
MODELS_MODULE = "bench_models_v2"
#: Tables created per transaction when preparing the diff database.
CREATE_BATCH = 200


@dataclass(frozen=True)
class Sizes:
    """How big and how often: N tables, K revisions, history length and repeat counts."""

    n: int
    ks: tuple[int, ...]
    gen_revisions: int
    repeat_cli: int
    repeat_diff: int
    repeat_read: int
    repeat_generate: int
    timeout: float
    #: One untimed run before the timed ones of read-only tasks (writes bytecode caches, warms the OS cache).
    warmup: bool = True
    #: Tenant schemas of the fleet task.
    tenants: int = 1000

    @property
    def k(self) -> int:
        """The largest K (the headline size)."""
        return max(self.ks)


QUICK = Sizes(n=50, ks=(50,), gen_revisions=50, repeat_cli=3, repeat_diff=2, repeat_read=2, repeat_generate=2,
              timeout=120.0, warmup=False, tenants=20)
FULL = Sizes(n=2000, ks=(1000, 3000), gen_revisions=1000, repeat_cli=10, repeat_diff=3, repeat_read=5,
             repeat_generate=3, timeout=1800.0)


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    sizes: Sizes
    backends: list[str]
    work: Path
    dbs: Databases
    log: Callable[[str], None]
    profile_dir: Path | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Write schemashift's bytecode first, as installing a package does (pip compiles Alembic's at install;
        an editable install and ``PYTHONDONTWRITEBYTECODE`` would make every schemashift process compile its
        sources, ~0.25 s of CPU each)."""
        import compileall

        import schemashift

        compileall.compile_dir(str(Path(schemashift.__file__).parent), quiet=1)

    # -- commands

    def env(self) -> dict[str, str]:
        """The child processes' environment (no SCHEMASHIFT_ENV leaking in)."""
        environ = dict(os.environ)
        environ.pop("SCHEMASHIFT_ENV", None)
        return environ

    def alembic(self, *args: str) -> list[str]:
        """argv for the `alembic` command."""
        script = BIN / "alembic"
        return [str(script), *args] if script.exists() else [sys.executable, "-m", "alembic", *args]

    def schemashift(self, *args: str) -> list[str]:
        """argv for the `schemashift` command."""
        script = BIN / "schemashift"
        return [str(script), *args] if script.exists() else [sys.executable, "-m", "schemashift", *args]

    def time(self, argv: list[str], repeat: int, **options: Any) -> Timing:
        """`time_process` with this run's environment and timeout (warm-ups off when the sizes say so)."""
        if not self.sizes.warmup:
            options["warmup"] = False
        return time_process(argv, repeat=repeat, env=self.env(), timeout=self.sizes.timeout, **options)

    def add(self, task: str, backend: str, size: str, alembic: Timing, schemashift: Timing, *,
            baseline: Timing | None = None, notes: str = "", target: str = "", met: bool | None = None,
            k: int | None = None) -> None:
        """Record one result row and log it."""
        row = {
            "task": task, "backend": backend, "size": size, "k": k, "alembic": alembic.as_dict(),
            "schemashift": schemashift.as_dict(), "baseline": baseline.as_dict() if baseline else None,
            "notes": notes, "target": target, "met": met,
        }
        self.results.append(row)
        self.log(f"  {task} [{backend}] {size}: alembic {_short(alembic)} | schemashift {_short(schemashift)}"
                 + (f" | baseline {_short(baseline)}" if baseline else ""))

    # -- profiling

    def profile(self, name: str, args: list[str], cwd: Path, after: Callable[[], None] | None = None) -> None:
        """Run one schemashift command under cProfile and write its top functions to profiles/NAME.txt."""
        if self.profile_dir is None:
            return
        prof = self.profile_dir / f"{name}.prof"
        script = BIN / "schemashift"
        target = [str(script)] if script.exists() else ["-m", "schemashift"]
        sample = run_process([sys.executable, "-m", "cProfile", "-o", str(prof), *target, *args], cwd=cwd,
                             env=self.env(), timeout=self.sizes.timeout)
        if after is not None:
            after()
        summarize_profile(prof, self.profile_dir / f"{name}.txt", sample)


def _short(timing: Timing) -> str:
    if not timing.ok:
        return f"failed: {timing.error}"[:120]
    rss = f", {timing.rss_mib:.0f} MiB" if timing.rss_mib is not None else ""
    return f"{timing.median:.3f} s{rss}"


def summarize_profile(prof: Path, out: Path, sample: Sample | None = None) -> None:
    """Write the top functions of a cProfile dump by cumulative and by own time."""
    import io
    import pstats

    if not prof.exists():
        out.write_text(f"no profile written: {sample.last_line() if sample else 'unknown error'}\n")
        return
    text = io.StringIO()
    stats = pstats.Stats(str(prof), stream=text)
    stats.strip_dirs()
    text.write("=== by cumulative time ===\n")
    stats.sort_stats("cumulative").print_stats(30)
    text.write("\n=== by own time ===\n")
    stats.sort_stats("tottime").print_stats(25)
    out.write_text(text.getvalue(), encoding="utf-8")


def _ratio_met(alembic: Timing, schemashift: Timing, at_least: float) -> bool | None:
    if not (alembic.ok and schemashift.ok):
        return None
    return alembic.median / schemashift.median >= at_least  # type: ignore[operator]


def _at_most(timing: Timing, seconds: float, applies: bool) -> bool | None:
    if not applies or not timing.ok:
        return None
    return timing.median <= seconds  # type: ignore[operator]


def _restorer(folder: Path) -> Callable[[], None]:
    """A function that puts the files of `folder` back as they are now (new files removed, changed ones restored)."""
    saved = {path: path.read_bytes() for path in folder.iterdir() if path.is_file()}

    def restore() -> None:
        for path in folder.iterdir():
            if path.is_dir():
                if path.name != "__pycache__":
                    shutil.rmtree(path, ignore_errors=True)
            elif path not in saved:
                path.unlink(missing_ok=True)
        for path, data in saved.items():
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
    return restore


def write_manifest(bench: Bench, project: Path) -> str | None:
    """Run `schemashift manifest` once (untimed), as a project would commit it; None when it worked."""
    sample = run_process(bench.schemashift("manifest"), cwd=project, env=bench.env(), timeout=bench.sizes.timeout)
    return None if sample.returncode == 0 else sample.last_line()


def _contains(*needles: str) -> Callable[[Sample], str | None]:
    """A check that the output holds every one of `needles`."""
    def check(sample: Sample) -> str | None:
        missing = [n for n in needles if n not in sample.stdout + sample.stderr]
        return f"output lacks {missing[0]!r}: {sample.last_line()}" if missing else None
    return check


def _guard(what: str, step: Callable[[], Timing]) -> Timing:
    """Run a measuring step; any exception becomes a failed Timing."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - the harness keeps going
        return failed(f"{what}: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- CLI start


def cli_start(bench: Bench) -> None:
    """`schemashift --help` vs `alembic --help`: interpreter start plus the imports of the entry point."""
    bench.log("CLI start")
    repeat = bench.sizes.repeat_cli
    alembic = bench.time(bench.alembic("--help"), repeat, warmup=True)
    schemashift = bench.time(bench.schemashift("--help"), repeat, warmup=True)
    bench.add("CLI start (--help)", "-", "-", alembic, schemashift, target="schemashift <= 0.10 s",
              met=_at_most(schemashift, 0.10, True))
    bench.profile("cli_start", ["--help"], bench.work)


# --------------------------------------------------------------------------- live diff


def prepare_diff_database(bench: Bench, backend: str) -> str:
    """A database holding version 1 of the N-table models; returns its URL."""
    url = bench.dbs.create(backend, "diff")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    start = time.perf_counter()
    metadata = build_metadata(bench.sizes.n)
    tables = list(metadata.tables.values())
    try:
        for start_at in range(0, len(tables), CREATE_BATCH):  # PostgreSQL: one transaction would run out of locks
            metadata.create_all(engine, tables=tables[start_at:start_at + CREATE_BATCH], checkfirst=False)
    finally:
        engine.dispose()
    bench.log(f"  created {bench.sizes.n} tables on {backend} in {time.perf_counter() - start:.1f} s")
    return url


def _worker(bench: Bench, task: str, url: str, repeat: int, profile: Path | None = None) -> Timing:
    spec = {"task": task, "url": url, "n": bench.sizes.n, "repeat": repeat, "profile": str(profile) if profile else None}
    sample = run_process([sys.executable, str(BENCH_DIR / "worker.py"), json.dumps(spec)], env=bench.env(),
                         timeout=bench.sizes.timeout)
    if sample.returncode != 0:
        return failed(sample.last_line())
    result = json.loads(sample.stdout.strip().splitlines()[-1])
    return Timing(runs=result["runs"], rss_mib=sample.rss_mib, detail=result["detail"])


def _diff_output_ok(marker: tuple[str, ...]) -> Callable[[Sample], str | None]:
    def check(sample: Sample) -> str | None:
        text = sample.stdout + sample.stderr
        return None if any(m in text for m in marker) else sample.last_line()
    return check


def live_diff(bench: Bench, backend: str, url: str) -> None:
    """Diff the live version-1 database against the version-2 models, in-process and as a whole process."""
    n, repeat = bench.sizes.n, bench.sizes.repeat_diff
    size = f"N={n}"
    full = n >= 2000
    alembic = _worker(bench, "alembic", url, repeat)
    profile = bench.profile_dir / f"live_diff_inprocess_{backend}.prof" if bench.profile_dir else None
    schemashift = _worker(bench, "schemashift", url, repeat, profile)
    if profile is not None:
        summarize_profile(profile, profile.with_suffix(".txt"))
    catalog = _worker(bench, "catalog", url, repeat)
    ratio_ok = _ratio_met(alembic, schemashift, 10.0) if full else None
    floor_ok = (schemashift.median <= 5 * catalog.median if schemashift.ok and catalog.ok else None) if full else None
    met = None if ratio_ok is None or floor_ok is None else ratio_ok and floor_ok
    bench.add("Live diff, in-process", backend, size, alembic, schemashift, baseline=catalog,
              notes=f"expected {expected_changes(n)} changes; alembic: {alembic.detail}; "
                    f"schemashift: {schemashift.detail or '-'}",
              target=">= 10x faster than Alembic; <= 5x the catalog queries", met=met)

    project = bench.work / f"diff_{backend}"
    scripts = project / "alembic"
    projects.write_alembic_scripts(scripts)
    ini = projects.write_alembic_ini(project / "alembic.ini", scripts, url, (project, f"{MODELS_MODULE}:metadata"))
    projects.write_schemashift_project(project, f"{MODELS_MODULE}:metadata")
    write_models_module(project / f"{MODELS_MODULE}.py", n, changed=True)
    alembic_whole = bench.time(bench.alembic("-c", str(ini), "check"), repeat, warmup=True, ok_codes=(0, 1, 255),
                               cwd=project, check=_diff_output_ok(("upgrade operations detected",)))
    args = ["diff", "--url", url]
    schemashift_whole = bench.time(bench.schemashift(*args), repeat, warmup=True, ok_codes=(0, 1), cwd=project,
                                   check=_diff_output_ok(("differs from", "No differences")))
    whole_met = None
    if full and schemashift_whole.ok:
        whole_met = schemashift_whole.median <= 2.0 and (schemashift_whole.rss_mib or 0) <= 150  # type: ignore[operator]
    bench.add("Live diff, whole process", backend, size, alembic_whole, schemashift_whole,
              notes="`alembic check` vs `schemashift diff`: start, import, load models, connect, diff",
              target="schemashift <= 2 s and <= 150 MiB", met=whole_met)
    bench.profile(f"live_diff_process_{backend}", args, project)


# --------------------------------------------------------------------------- generate


def write_generate_projects(bench: Bench) -> tuple[Path, Path]:
    """The history projects for `generate`: (schemashift project, Alembic script folder)."""
    n, revisions = bench.sizes.n, bench.sizes.gen_revisions
    ss_project = bench.work / "generate_schemashift"
    migrations = projects.write_schemashift_project(ss_project, f"{MODELS_MODULE}:metadata")
    write_models_module(ss_project / f"{MODELS_MODULE}.py", n, changed=True)
    try:
        projects.write_schemashift_history(migrations, n, revisions)
    except Exception as exc:  # noqa: BLE001
        (ss_project / "FAILED").write_text(f"writing the history failed: {type(exc).__name__}: {exc}")
    else:
        problem = write_manifest(bench, ss_project)
        if problem:
            bench.log(f"  note: `schemashift manifest` failed ({problem}); measuring without a manifest")
    scripts = bench.work / "generate_alembic"
    versions = projects.write_alembic_scripts(scripts)
    projects.write_alembic_history(versions, n, revisions)
    write_models_module(scripts / f"{MODELS_MODULE}.py", n, changed=True)
    return ss_project, scripts


def generate_schemashift(bench: Bench, project: Path) -> Timing:
    """`schemashift generate` with no database (measured once, shown on every backend's row)."""
    if (project / "FAILED").exists():
        return failed((project / "FAILED").read_text())
    undo = _restorer(project / "migrations")
    args = ["generate", "-m", "bench change"]
    timing = bench.time(bench.schemashift(*args), bench.sizes.repeat_generate, cwd=project, after_each=undo,
                        check=_contains("Wrote"))
    bench.profile("generate", args, project, after=undo)
    return timing


def generate(bench: Bench, backend: str, url: str, scripts: Path, schemashift: Timing) -> None:
    """Alembic `revision --autogenerate` against a database at head vs schemashift `generate` (no database)."""
    n, revisions = bench.sizes.n, bench.sizes.gen_revisions
    ini = projects.write_alembic_ini(bench.work / f"generate_{backend}.ini", scripts, url,
                                     (scripts, f"{MODELS_MODULE}:metadata"))
    stamp = run_process(bench.alembic("-c", str(ini), "stamp", "head"), env=bench.env(), timeout=bench.sizes.timeout)
    versions = scripts / "versions"
    if stamp.returncode != 0:
        alembic = failed(f"alembic stamp head: {stamp.last_line()}")
    else:
        undo = _restorer(versions)
        alembic = bench.time(bench.alembic("-c", str(ini), "revision", "--autogenerate", "-m", "bench change"),
                             bench.sizes.repeat_generate, after_each=undo, cwd=scripts, check=_contains("Generating"))
    full = n >= 2000 and revisions >= 1000
    bench.add("generate", backend, f"N={n}, {min(n, revisions)} revisions", alembic, schemashift,
              notes="Alembic has no database-free generate: `revision --autogenerate` against this backend's "
                    "database at head; schemashift `generate` needs no database (one measurement, repeated per row)",
              target="schemashift <= 1.5 s", met=_at_most(schemashift, 1.5, full))


# --------------------------------------------------------------------------- revision chains


@dataclass
class ChainProjects:
    """The K-revision chain written for both tools."""

    k: int
    alembic_scripts: Path
    schemashift_project: Path
    schemashift_error: str | None = None


def write_chain_projects(bench: Bench, k: int) -> ChainProjects:
    """Write the K-revision chain as Alembic revisions and as schemashift migrations."""
    steps = chain_steps(k)
    scripts = bench.work / f"chain{k}_alembic"
    projects.write_alembic_chain(projects.write_alembic_scripts(scripts), steps)
    project = bench.work / f"chain{k}_schemashift"
    error = None
    try:
        projects.write_schemashift_chain(projects.write_schemashift_project(project, None), steps)
    except Exception as exc:  # noqa: BLE001
        error = f"writing the migrations failed: {type(exc).__name__}: {exc}"
    else:
        problem = write_manifest(bench, project)
        if problem:
            bench.log(f"  note: `schemashift manifest` failed ({problem}); measuring without a manifest")
    return ChainProjects(k, scripts, project, error)


def verify_chain(url: str, k: int) -> str | None:
    """None when the database holds the last table and column of the K-revision chain, else what is missing."""
    last = chain_steps(k)[-1]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        if not inspector.has_table(last.table):
            return f"table {last.table} is missing after the upgrade"
        if last.column and last.column not in {c["name"] for c in inspector.get_columns(last.table)}:
            return f"column {last.table}.{last.column} is missing after the upgrade"
    finally:
        engine.dispose()
    return None


def _verified(timing: Timing, url: str, k: int) -> Timing:
    if timing.ok:
        problem = verify_chain(url, k)
        if problem:
            return failed(problem)
    return timing


def chain(bench: Bench, backend: str, chain_projects: ChainProjects) -> None:
    """upgrade from empty, status and no-op upgrade at head, offline SQL: K revisions on one backend."""
    k = chain_projects.k
    size = f"K={k}"
    headline = k >= 3000
    read = bench.sizes.repeat_read
    al_url = bench.dbs.create(backend, f"al{k}")
    ss_url = bench.dbs.create(backend, f"ss{k}")
    ini = projects.write_alembic_ini(bench.work / f"chain{k}_{backend}.ini", chain_projects.alembic_scripts, al_url)
    alembic = ["-c", str(ini)]
    project = chain_projects.schemashift_project
    ss_error = chain_projects.schemashift_error

    def schemashift(args: list[str], repeat: int, **options: Any) -> Timing:
        if ss_error:
            return failed(ss_error)
        return bench.time(bench.schemashift(*args, "--url", ss_url), repeat, cwd=project, **options)

    up_alembic = _verified(bench.time(bench.alembic(*alembic, "upgrade", "head"), 1), al_url, k)
    up_schemashift = _verified(schemashift(["upgrade", "--yes"], 1), ss_url, k)
    bench.add("upgrade from empty", backend, size, up_alembic, up_schemashift, k=k,
              notes="one run on a fresh database, both tools side by side; schemashift builds it from the head's "
                    "schema in one pass (a fresh build), takes the lock, records every revision with its checksum "
                    "and history row, checks the live schema",
              target=">= 5x faster than Alembic", met=_ratio_met(up_alembic, up_schemashift, 5.0) if headline else None)
    if up_schemashift.error and not ss_error:
        ss_error = f"database not at head: upgrade failed ({up_schemashift.error})"

    head_alembic, head_schemashift = projects.revision_id("alembic", k - 1), projects.revision_id("schemashift", k - 1)
    status_alembic = bench.time(bench.alembic(*alembic, "current"), read, warmup=True,
                                check=_contains(f"{head_alembic} (head)"))
    status_schemashift = schemashift(["status"], read, warmup=True, check=_contains(head_schemashift))
    bench.add("status at head", backend, size, status_alembic, status_schemashift, k=k,
              notes="`alembic current` vs `schemashift status` (which also checks the live schema for drift)",
              target="schemashift <= 0.2 s, linear in K", met=_at_most(status_schemashift, 0.2, headline))
    noop_alembic = bench.time(bench.alembic(*alembic, "upgrade", "head"), read, warmup=True)
    noop_schemashift = schemashift(["upgrade", "--yes"], read, warmup=True)
    bench.add("no-op upgrade at head", backend, size, noop_alembic, noop_schemashift, k=k,
              target="schemashift <= 0.2 s, linear in K", met=_at_most(noop_schemashift, 0.2, headline))
    if not ss_error and k == bench.sizes.k:
        if bench.profile_dir is not None:
            scratch = bench.dbs.create(backend, f"prof{k}")
            bench.profile(f"upgrade_empty_{backend}_k{k}", ["upgrade", "--yes", "--url", scratch], project)
        bench.profile(f"status_{backend}_k{k}", ["status", "--url", ss_url], project)
        bench.profile(f"noop_upgrade_{backend}_k{k}", ["upgrade", "--yes", "--url", ss_url], project)

    offline(bench, backend, chain_projects, headline)


def offline(bench: Bench, backend: str, chain_projects: ChainProjects, headline: bool) -> None:
    """`upgrade --sql` from base through K revisions, offline for both tools."""
    k = chain_projects.k
    read = bench.sizes.repeat_read
    empty_url = bench.dbs.create(backend, f"off{k}")
    ini = projects.write_alembic_ini(bench.work / f"offline{k}_{backend}.ini", chain_projects.alembic_scripts, empty_url)
    last = chain_steps(k)[-1]
    check = _contains(last.column or last.table)
    alembic = bench.time(bench.alembic("-c", str(ini), "upgrade", "head", "--sql"), read, warmup=True, check=check)
    args = ["upgrade", "--sql", "--from", "base", "--url", empty_url]
    if chain_projects.schemashift_error:
        schemashift = failed(chain_projects.schemashift_error)
    else:
        schemashift = bench.time(bench.schemashift(*args), read, warmup=True, cwd=chain_projects.schemashift_project,
                                 check=check)
        if k == bench.sizes.k:
            bench.profile(f"offline_{backend}_k{k}", args, chain_projects.schemashift_project)
    bench.add("offline upgrade --sql", backend, f"K={k}", alembic, schemashift, k=k,
              notes="both offline: no connection (schemashift `upgrade --sql --from base`)",
              target="schemashift <= 0.3 s", met=_at_most(schemashift, 0.3, headline))


def growth(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each chain task and backend measured at several K: how much each tool slowed from the smallest K."""
    rows: list[dict[str, Any]] = []
    keys = list(dict.fromkeys((r["task"], r["backend"]) for r in results if r.get("k")))
    keys.sort(key=lambda key: BACKENDS.index(key[1]) if key[1] in BACKENDS else len(BACKENDS))
    for task, backend in keys:
        measured = sorted((r for r in results if r["task"] == task and r["backend"] == backend and r.get("k")),
                          key=lambda r: r["k"])
        if len(measured) < 2:
            continue
        small, large = measured[0], measured[-1]
        factors = {}
        for tool in ("alembic", "schemashift"):
            a, b = small[tool]["median"], large[tool]["median"]
            factors[tool] = b / a if a and b else None
        rows.append({"task": task, "backend": backend, "k_small": small["k"], "k_large": large["k"], **factors})
    return rows
