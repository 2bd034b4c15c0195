"""The objects task: 200 views, functions and triggers mixed (issue 17), `generate` and a live `diff`.

The models (`OBJECTS_MODELS`, written into the project) hold 20 small tables and
200 objects: half views (every third one over an earlier view), a quarter
functions and a quarter triggers calling them on PostgreSQL; on MariaDB and
SQLite, which have no functions, views and triggers with the database's own
trigger body. Timed, as whole processes: `schemashift generate` with no database
(creating every object), then, after an untimed `upgrade`, `schemashift diff`
against the database just upgraded (which must find no difference). Alembic has
no counterpart (it ignores these objects): its cell says so. The package's bytecode
is compiled first, as an installed package has it: with ``PYTHONDONTWRITEBYTECODE``
set, every process would otherwise compile schemashift's sources again.
"""

from __future__ import annotations

import compileall
import resource
import shutil
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import projects
from measure import Sample, Timing, failed, run_process

if TYPE_CHECKING:
    from tasks import Bench

#: The models module of the objects project (a template: {backend} is filled in).
OBJECTS_MODELS = '''\
import sqlalchemy as sa
import schemashift

BACKEND = "{backend}"
COUNT, TABLES = {count}, 20
metadata = sa.MetaData()
tables = [sa.Table(f"t{{i}}", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
                   sa.Column("touched", sa.Integer, nullable=False, server_default="0")) for i in range(TABLES)]
views = COUNT // 2
functions = COUNT // 4 if BACKEND == "postgresql" else 0
for i in range(views):
    table = tables[i % TABLES]
    if i >= TABLES and i % 3 == 0:
        schemashift.View(f"v{{i}}", f"SELECT id, name FROM v{{i - TABLES}} WHERE id > {{i}}", metadata=metadata)
    else:
        schemashift.View(f"v{{i}}", sa.select(table.c.id, table.c.name).where(table.c.id > i), metadata=metadata)
for i in range(functions):
    schemashift.Function(f"f{{i}}()", "RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                         f"NEW.touched := NEW.touched + {{i}}; RETURN NEW; END $$", metadata=metadata)
for i in range(COUNT - views - functions):
    table = f"t{{i % TABLES}}"
    body = {{
        "postgresql": f"BEFORE UPDATE ON {{table}} FOR EACH ROW EXECUTE FUNCTION f{{i % max(functions, 1)}}()",
        "mysql": f"BEFORE UPDATE ON {{table}} FOR EACH ROW SET NEW.touched = NEW.touched + {{i}}",
        "sqlite": f"AFTER UPDATE OF name ON {{table}} BEGIN UPDATE {{table}} SET touched = touched + {{i}} "
                  "WHERE id = NEW.id; END",
    }}[BACKEND]
    schemashift.Trigger(f"tr{{i}}", table, body, metadata=metadata, only_on=(BACKEND,))
'''

#: The objects per project.
COUNT = 200


def write_project(folder: Path, backend: str, count: int = COUNT) -> Path:
    """A schemashift project whose models hold `count` objects for `backend`; returns the folder."""
    projects.write_schemashift_project(folder, "bench_objects:metadata")
    (folder / "bench_objects.py").write_text(OBJECTS_MODELS.format(backend=backend, count=count), encoding="utf-8")
    return folder


def objects_task(bench: Bench, backend: str) -> None:
    """`generate` (no database) and a clean live `diff` with 200 objects, each a whole process."""
    url = bench.dbs.create(backend, "objects")
    compile_package()
    project = write_project(bench.work / f"objects_{backend}", backend)
    not_alembic = failed("Alembic does not manage views, functions or triggers")
    repeat = bench.sizes.repeat_generate
    generate_argv = bench.schemashift("generate", "-m", "objects")
    generate = bench.time(generate_argv, repeat, cwd=project, after_each=lambda: _remove_migrations(project),
                          check=_said("Wrote"))
    cpu = cpu_seconds(generate_argv, project, bench.env())
    _remove_migrations(project)
    bench.add("objects: generate (no database)", backend, f"{COUNT} objects", not_alembic, generate,
              target="<= 2 s", met=_under(generate, 2.0), notes=_cpu_note(backend, cpu))
    diff = _live_diff(bench, project, url)
    cpu = cpu_seconds(bench.schemashift("diff", "--url", url), project, bench.env())
    bench.add("objects: live diff after upgrade", backend, f"{COUNT} objects", not_alembic, diff,
              target="<= 2 s, no difference", met=_under(diff, 2.0), notes=_cpu_note(backend, cpu))


def cpu_seconds(argv: list[str], cwd: Path, env: dict[str, str]) -> float | None:
    """The CPU time (user + system) of one run of `argv`: what a busy machine inflates least (None: it failed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=600, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        return None
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu_note(backend: str, cpu: float | None) -> str:
    return "" if cpu is None else f"{backend}: CPU time (user + system) of one more run {cpu:.2f} s"


def compile_package() -> None:
    """Write schemashift's bytecode (``__pycache__``), as installing a package does."""
    import schemashift

    compileall.compile_dir(str(Path(schemashift.__file__).parent), quiet=1)


def _live_diff(bench: Bench, project: Path, url: str) -> Timing:
    for args in (("generate", "-m", "objects"), ("upgrade", "--url", url, "--yes")):
        sample = run_process(bench.schemashift(*args), cwd=project, env=bench.env(), timeout=bench.sizes.timeout)
        if sample.returncode != 0:
            return failed(f"{args[0]}: {sample.last_line()}")
    return bench.time(bench.schemashift("diff", "--url", url), bench.sizes.repeat_diff, warmup=True, cwd=project,
                      check=_said("No differences"))


def _remove_migrations(project: Path) -> None:
    """Empty the migrations folder again (the migration and the manifest `generate` wrote)."""
    for path in (project / "migrations").iterdir():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def _said(text: str) -> Callable[[Sample], str | None]:
    """A check that the output says `text`."""
    def check(sample: Sample) -> str | None:
        return None if text in sample.stdout + sample.stderr else sample.last_line()
    return check


def _under(timing: Timing, seconds: float) -> bool | None:
    return None if not timing.ok else timing.median <= seconds  # type: ignore[operator]


def models_source(backend: str, count: int = COUNT) -> str:
    """The models module text (for the harness test)."""
    return textwrap.dedent(OBJECTS_MODELS.format(backend=backend, count=count))
