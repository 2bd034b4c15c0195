"""`upgrade` and `downgrade`: run a plan under the migration lock, print it (``--dry-run``) or its SQL (``--sql``).

One plan (`schemashift.planning.plan`) feeds the three: with ``--sql`` its
statements are printed as a script (for a database at ``--from REV`` no
connection is made); with ``--dry-run`` the plan and the rows whose values it
would lose are printed and the database is not changed; otherwise the lock is
taken, the version table checked, squashes recorded, data protection added
(`schemashift.planning.backups`), the run confirmed where the environment asks
for it and the plan executed (`schemashift.runtime.executor`). A database that
already holds the tables the migrations create, without any history, is refused
before the first statement (`unmanaged_problem`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from schemashift.dialects import dialect_of, get_dialect
from schemashift.errors import DatabaseStateError, SchemashiftError, UnmanagedDatabase
from schemashift.model.schema import qualify
from schemashift.operations import CreateTable, RenameTable
from schemashift.planning import backups
from schemashift.planning.fresh import FreshBuild, FreshRefused, plan_fresh, planned_anew
from schemashift.planning.plan import DOWN, UP, Plan, build_plan
from schemashift.reflection.core import INTERNAL_PREFIX
from schemashift.runtime.locks import migration_lock
from schemashift.runtime.versions import Recorder, now
from schemashift.services.compare import (
    TakenFingerprint,
    clean_fingerprints,
    fingerprinted,
    remember_fingerprint,
    take_fingerprint,
)
from schemashift.services.project import (
    Output,
    Project,
    backend_name,
    checked_current,
    current_revision,
    masked_url,
    not_created,
    partial_problem,
    print_line,
)
from schemashift.services.prompting import NO_PROMPTS, Prompter, confirm
from schemashift.services.squash import (
    REPLACED_DIR,
    all_replaced,
    catch_up,
    covered_squashes,
    record_sql,
    resolve_replaced,
    route_from,
    squash_problems,
)

if TYPE_CHECKING:
    from schemashift.dialects.base import Dialect
    from schemashift.history.chain import History
    from schemashift.runtime.fresh import Beside
    from schemashift.support.progress import Reporter


def upgrade(project: Project, target: str = "head", *, sql: bool = False, dry_run: bool = False, yes: bool = False,
            allow_data_loss: bool = False, out: Output = print_line, from_revision: str | None = None,
            reporter: Reporter | None = None, prompter: Prompter = NO_PROMPTS, step_by_step: bool = False) -> None:
    """Upgrade the database to `target` (default head), under the migration lock.

    With `sql` and `from_revision` (a revision, or ``base``) the SQL is printed for
    a database at that revision, without connecting. `reporter` is told of each
    migration and statement as it starts (default: a line through `out` per migration).
    An environment with ``confirm`` asks `prompter` unless `yes`. An empty database
    is built from the target's schema in one pass (`schemashift.planning.fresh`)
    unless `step_by_step` (or the environment's ``step_by_step``) asks for every migration to run.
    """
    migrate(project, target, UP, sql=sql, dry_run=dry_run, yes=yes, allow_data_loss=allow_data_loss, out=out,
            from_revision=from_revision, reporter=reporter, prompter=prompter, step_by_step=step_by_step)


def downgrade(project: Project, target: str, *, sql: bool = False, dry_run: bool = False, yes: bool = False,
              allow_data_loss: bool = False, out: Output = print_line, from_revision: str | None = None,
              reporter: Reporter | None = None, prompter: Prompter = NO_PROMPTS) -> None:
    """Downgrade the database to `target` (``-N``, a revision or prefix, or ``base``); the rest as for `upgrade`."""
    migrate(project, target, DOWN, sql=sql, dry_run=dry_run, yes=yes, allow_data_loss=allow_data_loss, out=out,
            from_revision=from_revision, reporter=reporter, prompter=prompter)


def migrate(project: Project, target: str, direction: str, *, sql: bool, dry_run: bool, yes: bool,
            allow_data_loss: bool, out: Output, from_revision: str | None = None,
            reporter: Reporter | None = None, prompter: Prompter = NO_PROMPTS, fingerprint: bool = True,
            step_by_step: bool = False) -> str | None:
    """Move the database to `target` in `direction` (``UP``/``DOWN``), or print the SQL or the plan of it.

    Returns the revision the database is left at (None: base, or nothing was run: ``sql``, ``dry_run``).
    With `fingerprint` off the live schema is not checked and fingerprinted for the fast `status` afterwards
    (a fleet run: `schemashift.services.fleet`). An upgrade of an empty database starts with a fresh
    build (`fresh_build`) unless `step_by_step`.
    """
    step_by_step = step_by_step or project.env.step_by_step
    history = project.history()
    if from_revision is not None:
        if not sql:
            raise SchemashiftError("--from REV goes with --sql (offline SQL for a database at REV)")
        print_offline(project, history, target, direction, from_revision, out, allow_data_loss=allow_data_loss,
                      step_by_step=step_by_step)
        return None
    if sql and direction == UP and not_created(project):  # a SQLite file not there yet: printing must not create it
        print_offline(project, history, target, direction, "base", out, allow_data_loss=allow_data_loss,
                      step_by_step=step_by_step)
        return None
    if sql:
        print_sql(project, history, target, direction, out, allow_data_loss=allow_data_loss,
                  step_by_step=step_by_step)
        return None
    if dry_run and not_created(project):  # a SQLite file not there yet: plan for the empty database it would be
        engine = sa.create_engine("sqlite://")
        try:
            with engine.connect() as connection:
                _print_plan(project, connection, history, target, direction, out, allow_data_loss=allow_data_loss,
                            step_by_step=step_by_step)
        finally:
            engine.dispose()
        return None
    with project.connect() as connection:
        if dry_run:
            _print_plan(project, connection, history, target, direction, out, allow_data_loss=allow_data_loss,
                        step_by_step=step_by_step)
            return None
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        with migration_lock(dialect, connection, project.lock_name, project.env):
            try:
                current = checked_current(recorder, history)
            except DatabaseStateError:  # an interrupted fresh build, or in the middle of a squashed range: deal
                if direction != UP or not (  # with it and go on, else report it
                        take_back_interrupted(connection, recorder, history, dialect, out)
                        or _run_replaced(project, connection, recorder, history, out, reporter, yes=yes,
                                         prompter=prompter, allow_data_loss=allow_data_loss)):
                    raise
                current = checked_current(recorder, history)
            record_squashes(recorder, history, out)
            build = None if step_by_step else fresh_build(connection, recorder, history, dialect, current, target,
                                                          direction, pipelined=True)
            plan = plan_after(history, dialect, build, current, target, direction)
            refuse_unmanaged(connection, recorder, plan)
            plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss)
            if plan.empty and build is None:
                out(f"Nothing to do: the database is at {current or 'base'}.")
                return current
            goal = plan.target if not plan.empty else build.target  # type: ignore[union-attr]
            verb = "upgrade" if direction == UP else "downgrade"
            steps = len(plan.steps) + (len(build.migrations) if build is not None else 0)
            count = f"{steps} migration{'' if steps == 1 else 's'}"
            _confirm(project, yes, prompter, f"{verb} to {goal or 'base'} ({count})")
            dialect.ensure_schema(connection, project.env.schema)  # confirmed: now the database may change
            recorder.ensure()
            from schemashift.runtime.executor import Executor
            from schemashift.runtime.objects import remember_built_objects, remember_objects

            taken: list[TakenFingerprint] = []
            if build is not None:
                early = fingerprint and plan.empty and fingerprinted(project)
                try:
                    _run_fresh(project, connection, recorder, build, out, reporter,
                               beside=_fingerprint_beside(project, build, taken) if early else None)
                except FreshRefused:  # found while it ran and taken back: step by step, as if never planned
                    build = None
                    plan = backups.prepare(connection, plan_to(history, dialect, current, target, direction),
                                           project.env, allow_data_loss=allow_data_loss)
                else:
                    remember_built_objects(connection, build.dialect, build.after)
            if not plan.empty:
                Executor(connection, recorder, project.migration_context(connection), out, reporter).run(plan)
                remember_objects(connection, plan)
            after = plan.steps[-1].after if not plan.empty else build.after  # type: ignore[union-attr]
            if goal is not None and fingerprint:
                remember_fingerprint(project, connection, goal, after, check=True, taken=next(iter(taken), None),
                                     recorder=recorder, defer=build is not None and plan.empty)
            out(f"Database is at {goal or 'base'}.")
            return goal


def _print_plan(project: Project, connection: sa.Connection, history: History, target: str, direction: str,
                out: Output, *, allow_data_loss: bool, step_by_step: bool = False) -> None:
    """``--dry-run``: the plan, the rows whose values it would lose and what it would refuse; nothing changes."""
    recorder = project.recorder(connection)
    current = checked_current(recorder, history)
    dialect = dialect_of(connection)
    build = None if step_by_step else fresh_build(connection, recorder, history, dialect, current, target, direction)
    plan = plan_after(history, dialect, build, current, target, direction)
    refuse_unmanaged(connection, recorder, plan)
    plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss, dry_run=True)
    lines = build.lines() + ([] if plan.empty else plan.lines()) if build is not None else plan.lines()
    for line in lines + backups.rows_at_risk(connection, plan):
        out(line)


def _confirm(project: Project, yes: bool, prompter: Prompter, what: str) -> None:
    """Ask `prompter` to confirm `what` where the environment says so (``confirm = true``) and `yes` was not given."""
    if not project.env.confirm or yes:
        return
    confirm(prompter, project.env.name, masked_url(project), what)


def _run_replaced(project: Project, connection: sa.Connection, recorder: Recorder, history: History, out: Output,
                  reporter: Reporter | None, *, yes: bool, prompter: Prompter, allow_data_loss: bool) -> bool:
    """Run the replaced migrations a database stopped in the middle of (`schemashift.services.squash.catch_up`).

    False when there were none to run (the database's problem is another).
    """
    applied = recorder.applied()
    if partial_problem(applied) is not None or not squash_problems(applied, history):
        return False
    dialect = dialect_of(connection)

    def run(old: History, current: str | None, goal: str) -> None:
        plan = backups.prepare(connection, build_plan(old, dialect, current, goal), project.env,
                               allow_data_loss=allow_data_loss)
        if plan.empty:
            return
        _confirm(project, yes, prompter, f"run the replaced migrations up to {goal} (squashed)")
        out(f"The database stopped inside a squashed range: running the rest of it from {REPLACED_DIR}/.")
        from schemashift.runtime.executor import Executor

        Executor(connection, recorder, project.migration_context(connection), out, reporter).run(plan)

    catch_up(applied, history, run=run, record=lambda old: record_squashes(recorder, old, out),
             current=lambda old: current_revision(recorder.applied(), old))
    return True


def record_squashes(recorder: Recorder, history: History, out: Output) -> None:
    """Record each squashed migration whose replaced revisions all ran as applied, and drop their rows."""
    covered = covered_squashes(recorder.applied(), history)
    if not covered:
        return
    with recorder.connection.begin():
        for migration in covered:
            started = now()
            recorder.insert(migration.revision, migration.parent, migration.checksum, migration.message, "applied")
            recorder.log(migration.revision, "squash", migration.checksum, migration.message, started, 0, "ok")
            for revision in all_replaced(history, migration):
                recorder.delete(revision)
            out(f"Recorded {migration.path.name} as applied: the database ran every migration it replaces.")


def plan_to(history: History, dialect: Dialect, current: str | None, target: str, direction: str) -> Plan:
    """The plan from `current` to `target`; a target on the other side of `current` names the other command."""
    goal = history.resolve(target, current)
    plan = build_plan(history, dialect, current, goal)
    if not plan.empty and plan.direction != direction:
        verb = "upgrade" if direction == UP else "downgrade"
        raise SchemashiftError(
            f"cannot {verb} to {target}: the database is at {current or 'base'}, use "
            f"`schemashift {'downgrade' if direction == UP else 'upgrade'} {target}`"
        )
    return plan


# -- fresh builds -------------------------------------------------------------------


def fresh_build(connection: sa.Connection, recorder: Recorder, history: History, dialect: Dialect,
                current: str | None, target: str, direction: str, *, pipelined: bool = False) -> FreshBuild | None:
    """The fresh build (`schemashift.planning.fresh`) that starts an upgrade of an empty database, or None.

    Empty: no version rows and no table but schemashift's own in the schemas the
    build creates tables in, and no kept data (a `downgrade base` that kept rows:
    only the step-by-step upgrade restores them). The build may end before
    `target` (a data migration): the rest of the path then runs step by step.
    `pipelined`: for an upgrade about to run it (`plan_fresh`: its run may compile it).
    """
    if direction != UP or current is not None or recorder.applied():
        return None
    if backups.recorded(connection, recorder.schema):
        return None
    goal = history.resolve(target, current)
    if history.index(goal) < 1:
        return None  # base, or one migration: nothing to gain
    build = plan_fresh(history, dialect, goal, pipelined=pipelined)
    if build is None or _unmanaged_tables(connection, recorder, set(build.after.tables)):
        return None
    return build


def interrupted_build(connection: sa.Connection, recorder: Recorder, history: History,
                      dialect: Dialect) -> FreshBuild | None:
    """The side-by-side fresh build whose marker row the version table holds (it crashed or is running), or None.

    `DatabaseStateError` naming ``repair`` when the migrations no longer give that build. Taking it back or
    finishing it needs no statement of it: it may come still to compile (`plan_fresh` with `pipelined`), or be
    planned anew when the kept plan says "step by step" (a build that found out while it ran, then crashed).
    """
    marker = next((row for row in recorder.applied().values() if row.building), None)
    if marker is None:
        return None
    migration = history.get(marker.revision)
    build = None
    if migration is not None:
        build = (plan_fresh(history, dialect, marker.revision, pipelined=True)
                 or planned_anew(history, dialect, marker.revision))
    if migration is None or migration.checksum != marker.checksum or build is None or build.target != marker.revision:
        raise DatabaseStateError(f"a fresh build to {marker.revision} was interrupted and the migrations up to it "
                                 "changed since: see `schemashift status`, then `schemashift repair`")
    return build


def take_back_interrupted(connection: sa.Connection, recorder: Recorder, history: History, dialect: Dialect,
                          out: Output) -> bool:
    """Take back an interrupted side-by-side fresh build (`schemashift.runtime.fresh.take_back`), so that the
    database is empty again and an upgrade builds it anew; False when there is none."""
    build = interrupted_build(connection, recorder, history, dialect)
    if build is None:
        return False
    from schemashift.runtime.fresh import take_back

    out(f"A fresh build to {build.target} did not finish: taking back the tables it created.")
    take_back(connection, recorder, build)
    return True


def plan_after(history: History, dialect: Dialect, build: FreshBuild | None, current: str | None, target: str,
               direction: str) -> Plan:
    """The plan from `current` to `target`, or with a fresh `build` the rest of the way from where it ends."""
    if build is None:
        return plan_to(history, dialect, current, target, direction)
    return plan_to(history, dialect, build.target, history.resolve(target, current) or "base", direction)


def _run_fresh(project: Project, connection: sa.Connection, recorder: Recorder, build: FreshBuild, out: Output,
               reporter: Reporter | None, beside: Beside | None = None) -> None:
    from schemashift.runtime.fresh import run_fresh
    from schemashift.support.progress import Reporter

    run_fresh(connection, recorder, build, reporter or Reporter(out),
              connect=lambda: project.connect_beside(connection), beside=beside)


def _fingerprint_beside(project: Project, build: FreshBuild, taken: list[TakenFingerprint]) -> Beside:
    """Read the fingerprint of the database `build` made (`take_fingerprint`) on a helper connection while the
    rows are recorded, into `taken`; judged clean only when it is one known clean (no drift check here: see
    `remember_fingerprint`'s `defer`)."""

    def take(helpers: list[sa.Connection]) -> None:
        if clean_fingerprints(project, helpers[0], build.target).values:  # else none could be judged clean
            taken.append(take_fingerprint(project, helpers[0], build.target, build.after, check=True,
                                          differences=False))

    return take


# -- databases schemashift never migrated --------------------------------------


def created_tables(plan: Plan) -> set[str]:
    """The keys of every table the steps of an upgrade `plan` create (or rename a table to)."""
    created: set[str] = set()
    for step in plan.steps:
        for operation in step.operations:
            if isinstance(operation, CreateTable):
                created.add(operation.table.key)
            elif isinstance(operation, RenameTable):
                created.add(qualify(operation.new_name, operation.schema))
    return created


def unmanaged_problem(connection: sa.Connection, recorder: Recorder, wanted: set[str]) -> str | None:
    """Why the database cannot be upgraded from base: it already holds tables of `wanted`, with no history.

    Only when the version table is missing or empty: a database that schemashift
    never migrated. Tables the migrations never create may be there (another
    application's, say) and do not count. None when there is no such collision.
    """
    if not wanted or recorder.applied():
        return None
    live = _unmanaged_tables(connection, recorder, wanted)
    clashes = sorted(key for key in live if key in wanted)
    if not clashes:
        return None
    alembic = "alembic_version" in live and "alembic_version" not in wanted
    tables = [key for key in live if not (alembic and key == "alembic_version")]
    named = clashes + sorted(set(tables) - set(clashes))
    shown = ", ".join(named[:4]) + (f" and {len(named) - 4} more" if len(named) > 4 else "")
    also = " (and an Alembic alembic_version table)" if alembic else ""
    return (f"the database already holds {len(tables)} table(s) not created by schemashift ({shown}), "
            f"{len(clashes)} of which the migrations create{also}"
            ": bring it under schemashift with `schemashift baseline` (or `schemashift stamp REV`)")


def _unmanaged_tables(connection: sa.Connection, recorder: Recorder, wanted: set[str]) -> list[str]:
    """The live tables of the schemas `wanted` names (and the default one), without schemashift's own."""
    inspector = sa.inspect(connection)
    own = recorder.own_tables | {backups.REGISTRY}
    live: list[str] = []
    for schema in sorted({key.rsplit(".", 1)[0] if "." in key else None for key in wanted} | {None},
                         key=lambda name: name or ""):
        try:
            names = inspector.get_table_names(schema=schema)
        except sa.exc.DBAPIError:  # a schema that does not exist yet
            if connection.in_transaction():
                connection.rollback()
            continue
        live += [qualify(name, schema) for name in names if name not in own and not name.startswith(INTERNAL_PREFIX)]
    if connection.in_transaction():
        connection.commit()
    return live


def refuse_unmanaged(connection: sa.Connection, recorder: Recorder, plan: Plan) -> None:
    """Stop an upgrade from base before its first statement when its tables already exist (see `unmanaged_problem`)."""
    if plan.direction != UP or plan.start is not None or plan.empty:
        return
    problem = unmanaged_problem(connection, recorder, created_tables(plan))
    if problem:
        raise UnmanagedDatabase(f"cannot upgrade: {problem}; nothing was changed")


# -- SQL scripts ------------------------------------------------------------------


def print_sql(project: Project, history: History, target: str, direction: str, out: Output, *,
              allow_data_loss: bool = False, step_by_step: bool = False) -> None:
    """``--sql``: the script that moves the database from where it is to `target` (an empty database: with the
    fresh build `upgrade` would run, unless `step_by_step`)."""
    from schemashift.planning.offline import offline_script

    with project.connect() as connection:
        dialect = dialect_of(connection)
        recorder = project.recorder(connection)
        current = checked_current(recorder, history)
        build = None if step_by_step else fresh_build(connection, recorder, history, dialect, current, target,
                                                      direction)
        plan = plan_after(history, dialect, build, current, target, direction)
        plan = backups.prepare(connection, plan, project.env, allow_data_loss=allow_data_loss)
        out(offline_script(plan, recorder, fresh=build))


def print_offline(project: Project, history: History, target: str, direction: str, start: str, out: Output, *,
                  allow_data_loss: bool = False, step_by_step: bool = False) -> None:
    """`--sql --from REV`: the script for a database at `start`, with no connection (the URL names the dialect).

    From ``base`` (an empty database) an upgrade starts with the fresh build `upgrade` would run, unless `step_by_step`.
    """
    from schemashift.planning.offline import ScriptKey, offline_script, safe_key
    from schemashift.planning.safe import make_safe, settings_of

    backend = backend_name(project)
    dialect = get_dialect(backend)
    allow = allow_data_loss or project.env.allow_data_loss
    recorder = Recorder(None, project.env.version_table, project.env.schema)  # type: ignore[arg-type]  # tables only

    def offline(plan: Plan) -> Plan:
        plan = make_safe(plan, settings_of(project.env, dialect))
        plan = backups.protect(plan, keep=project.env.keep_data, allow_data_loss=allow, kept={},
                               registry_schema=project.env.schema)
        return dialect.adapt_offline(plan)

    replaced = resolve_replaced(history, start) if direction == UP and start != "base" else None
    current = replaced or history.resolve(start)
    for old, squashed in (route_from(history, replaced) or [] if replaced else []):  # a revision a squash replaced
        plan = offline(build_plan(old, dialect, current, squashed.replaces[-1]))
        out(offline_script(plan, recorder, create_version_table=False))
        out("\n".join(record_sql(recorder.version, squashed, all_replaced(old, squashed), dialect.sa_dialect())))
        current = squashed.revision
    build = None
    if direction == UP and current is None and not step_by_step:
        build = plan_fresh(history, dialect, history.resolve(target, current))
    plan = offline(plan_after(history, dialect, build, current, target, direction))
    key = ScriptKey(backend, project.env.version_table, project.env.schema, project.env.keep_data, allow,
                    safe_key(project.env))
    # `remember`: the script is kept for `schemashift.planning.offline.cached_script`
    out(offline_script(plan, recorder, create_version_table=current is None, remember=(history, key), fresh=build,
                       step_by_step=step_by_step))


__all__ = [
    "created_tables", "downgrade", "fresh_build", "interrupted_build", "migrate", "plan_to", "print_offline",
    "print_sql", "record_squashes", "refuse_unmanaged", "take_back_interrupted", "unmanaged_problem", "upgrade",
]
