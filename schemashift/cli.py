"""The `schemashift` command line: argument parsing, output and exit codes.

Only the standard library is imported at start-up so `--help` stays fast; each
command handler imports `schemashift.api` (and through it SQLAlchemy) when run,
`upgrade` only its own service. The command itself is `run`: `main`, then an end
of the process that skips the interpreter's teardown.
A handler turns its options into one api call (after the fast paths of `upgrade`
and `status`, which may answer without it) and prints the result; the decisions
are in `schemashift.services`. The configuration is read once, in `main`, and
handed on. Questions (confirmations, the repair action, renames) are asked by
`TerminalPrompter`, the one place that reads the terminal.
Exit codes: 0 ok, 1 differences found, 2 usage or input error, 3 internal error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from schemashift.support.gcpause import relax_for_process

if TYPE_CHECKING:
    from schemashift import api
    from schemashift.autodetect.differ import Questioner
    from schemashift.support.progress import Reporter

PROG = "schemashift"
EXIT_OK, EXIT_DIFFERENCES, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


# --------------------------------------------------------------------------- parsing


def _rename_table(text: str) -> tuple[str, str]:
    old, sep, new = text.partition(":")
    if not sep or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected OLD:NEW, got {text!r}")
    return old.strip(), new.strip()


def _rename_column(text: str) -> tuple[str, str, str]:
    left, sep, new = text.partition(":")
    table, dot, old = left.rpartition(".")
    if not sep or not dot or not table.strip() or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected TABLE.OLD:NEW, got {text!r}")
    return table.strip(), old.strip(), new.strip()


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), naming where to find help."""

    def error(self, message: str) -> typing.NoReturn:
        command = self.prog if self.prog != PROG else PROG
        print(f"{PROG}: error: {message} (see `{command} --help`)", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE)


def _default(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    table, dot, name = column.strip().rpartition(".")
    if not sep or not dot or not table or not name:
        raise argparse.ArgumentTypeError(f"expected TABLE.COLUMN=VALUE, got {text!r}")
    return f"{table}.{name}", value


def _global_options() -> Parser:
    """Options accepted before and after the command name (defaults suppressed so neither overwrites)."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("global options")
    group.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                       help="configuration file (default: ./schemashift.toml or ./pyproject.toml)")
    group.add_argument("--env", metavar="NAME", default=argparse.SUPPRESS,
                       help="environment to use (default: $SCHEMASHIFT_ENV, then default_env)")
    group.add_argument("--url", metavar="URL", default=argparse.SUPPRESS,
                       help="database URL, overriding the environment's")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print tracebacks on errors")
    group.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                       help="upgrade, downgrade, repair: print only errors and the final line")
    return parent


def _apply_options(parser: argparse.ArgumentParser, *, sql: bool = False) -> None:
    if sql:
        parser.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
        parser.add_argument("--from", dest="from_revision", metavar="REV",
                            help="with --sql: the revision the database is at (base: empty); no connection is made")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (migrations and their operations) and the rows whose values it would "
                             "lose, without changing the database")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--allow-data-loss", action="store_true", help="allow operations that drop data")


def _tenant_options(parser: argparse.ArgumentParser, *, json: bool = False) -> None:
    """--tenant / --all-tenants / --parallel of the commands that run on a tenant fleet."""
    group = parser.add_argument_group("tenant fleets")
    group.add_argument("--tenant", metavar="NAME", action="append", dest="tenants",
                       help="run on this tenant of the environment (repeatable)")
    group.add_argument("--all-tenants", action="store_true", help="run on every tenant of the environment")
    group.add_argument("--parallel", metavar="N", type=_positive, default=1,
                       help="with --all-tenants: tenants run at once (default: 1)")
    if json:
        group.add_argument("--json", action="store_true", help="with --tenant/--all-tenants: the summary as JSON")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _alembic_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alembic-dir", metavar="DIR", help="the Alembic scripts folder (default: script_location "
                        "of ./alembic.ini), checked when the database has alembic_version")
    parser.add_argument("--drop-alembic-version", action="store_true", help="drop the alembic_version table")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and documentation)."""
    from schemashift.version import __version__

    common = _global_options()
    parser = Parser(
        prog=PROG, parents=[common],
        description="Schema migrations for SQLAlchemy models: generated, locked, reversible, multi-environment.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text)

    init = command("init", "create schemashift.toml and the migrations folder here (--url sets the local env)")
    init.add_argument("--models", metavar="MODULE:ATTR", help="import path of the declarative base or MetaData")

    generate = command("generate", "write a migration from the difference between models and migrations")
    generate.add_argument("-m", "--message", required=True, help="what the migration does")
    generate.add_argument("--empty", action="store_true", help="write an empty migration to fill in by hand")
    generate.add_argument("--rename-table", metavar="OLD:NEW", action="append", type=_rename_table, default=[],
                          dest="rename_tables", help="treat table OLD as renamed to NEW (repeatable)")
    generate.add_argument("--rename-column", metavar="TABLE.OLD:NEW", action="append", type=_rename_column,
                          default=[], dest="rename_columns", help="treat a column as renamed (repeatable)")
    generate.add_argument("--no-rename", action="store_true", help="never guess renames: drop and add instead")
    generate.add_argument("--default", metavar="TABLE.COLUMN=VALUE", action="append", type=_default, default=[],
                          dest="defaults", help="a one-off value for the existing rows of a NOT NULL column added "
                          "without a default (repeatable; not kept as a default)")

    command("check", "exit 1 when the models differ from the migrations")

    upgrade = command("upgrade", "apply migrations up to TARGET (default: head)")
    upgrade.add_argument("target", nargs="?", default="head", metavar="TARGET")
    _apply_options(upgrade, sql=True)
    upgrade.add_argument("--step-by-step", action="store_true",
                         help="run every migration on an empty database too, instead of building it from the "
                              "target's schema in one pass")
    _tenant_options(upgrade, json=True)

    downgrade = command("downgrade", "revert migrations down to TARGET")
    downgrade.add_argument("target", metavar="TARGET")
    _apply_options(downgrade, sql=True)
    _tenant_options(downgrade, json=True)

    status = command("status", "show the database's revision and pending migrations")
    status.add_argument("--json", action="store_true", help="output JSON")
    _tenant_options(status)

    history = command("history", "list the migrations")
    history.add_argument("--applied", action="store_true", help="only those applied to the database")
    history.add_argument("--json", action="store_true", help="output JSON")
    history.add_argument("--graph", action="store_true", help="draw the revision chain, head first")

    diff = command("diff", "show differences between the database and the models or migrations")
    diff.add_argument("--against", choices=("models", "migrations"), default="models")
    diff.add_argument("--json", action="store_true", help="output JSON")
    _tenant_options(diff)

    lint = command("lint", "check migrations for what would lose data, block writes or break running code")
    lint.add_argument("range", nargs="?", metavar="REV|REV..REV",
                      help="the migrations to check, REV..REV with both ends (default: those not yet applied to the "
                      "environment)")
    lint.add_argument("--all", action="store_true", dest="every", help="check every migration")
    output = lint.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="output JSON")
    output.add_argument("--sarif", action="store_true", help="output SARIF 2.1.0 (code-scanning tools)")

    erd = command("erd", "print an entity-relationship diagram of the models (or of the database with --live)")
    erd.add_argument("--format", choices=("mermaid", "dot"), default="mermaid", help="Mermaid erDiagram or Graphviz")
    erd.add_argument("--live", action="store_true", help="diagram the database instead of the models")

    envs = command("envs", "list the configured environments")
    envs.add_argument("--json", action="store_true", help="output JSON")

    verify = command("verify", "check that applied migration files were not changed")
    verify.add_argument("--accept", action="store_true", help="accept the current files as the applied ones")
    verify.add_argument("--json", action="store_true", help="output JSON")
    _tenant_options(verify)

    repair = command("repair", "fix a database left half-migrated")
    repair.add_argument("action", nargs="?", choices=("continue", "undo"), metavar="ACTION",
                        help="`continue`: run the rest of the partly applied migration once its cause is fixed; "
                             "`undo`: revert what it ran (asked at a terminal when omitted); after an "
                             "interrupted fresh build either drops the empty tables it created")

    baseline = command("baseline", "write a first migration from an existing database's schema and record it "
                                    "as applied without running it")
    baseline.add_argument("-m", "--message", default="baseline", help="what the migration says (default: baseline)")
    baseline.add_argument("--after", metavar="HEAD", help="adopt the database on top of the existing migrations "
                          "(the new migration holds the difference from their head)")
    _alembic_options(baseline)
    baseline.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    stamp = command("stamp", "record REVISION as applied where the live schema matches it (never runs DDL)")
    stamp.add_argument("revision", metavar="REVISION")
    stamp.add_argument("--force", action="store_true", help="record it despite differences (noted in the history)")
    _alembic_options(stamp)
    stamp.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    command("rebase", "put forked migration branches one after the other (edits files, no database)")

    squash = command("squash", "replace a run of migrations by one that declares `replaces` (edits files, no database)")
    squash.add_argument("-m", "--message", required=True, help="what the squashed migration says")
    squash.add_argument("--from", dest="start", metavar="REV", help="first migration to replace (default: the first)")
    squash.add_argument("--to", dest="end", metavar="REV", help="last migration to replace (default: head)")

    manifest = command("manifest", "write migrations/schemashift.sum, the manifest of the migration files, "
                       "and schemashift.head, the schema they build")
    manifest.add_argument("--check", action="store_true", help="exit 1 when the manifest does not match the files")

    command("test-migrations", "upgrade, downgrade and upgrade again on a scratch database")

    backups = command("backups", "manage data kept from dropped tables and columns")
    backup_commands = backups.add_subparsers(dest="backups_command", metavar="ACTION", required=True)
    backup_list = backup_commands.add_parser("list", parents=[common], help="list kept data")
    backup_list.add_argument("--json", action="store_true", help="output JSON")
    prune = backup_commands.add_parser("prune", parents=[common], help="delete kept data older than a duration")
    prune.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 30d, 12h")
    return parser


# --------------------------------------------------------------------------- output helpers


def _out(line: str) -> None:
    print(line, flush=True)


def _print_json(data: Any) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def _print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


def _emit(args: argparse.Namespace, data: Any, lines: Sequence[str]) -> None:
    """Print `data` as JSON with --json, else `lines`."""
    if args.json:
        _print_json(data)
    else:
        _print_lines(lines)


def _row_text(row: dict[str, Any]) -> str:
    """A one-line rendering of a dict from the api (known keys first, then key=value)."""
    head = [str(row[key]) for key in ("revision", "name", "message") if row.get(key) not in (None, "")]
    rest = [f"{key}={value}" for key, value in row.items()
            if key not in ("revision", "name", "message", "checksum") and value not in (None, "", [], {})]
    return "  ".join(head + rest)


# --------------------------------------------------------------------------- questions


def _is_terminal(stream: Any) -> bool:
    """True when `stream` is open on a terminal (a closed standard stream is None in Python)."""
    try:
        return stream is not None and bool(stream.isatty())
    except ValueError:  # a stream closed by the program
        return False


class TerminalPrompter:
    """Asks at the terminal; nothing is asked unless both stdin and stdout are one (see `services.prompting`)."""

    def can_ask(self) -> bool:
        """True at a terminal."""
        return _is_terminal(sys.stdin) and _is_terminal(sys.stdout)

    def ask(self, question: str) -> str:
        """The answer typed, stripped and lower-cased; end of input is ``""`` (after a newline)."""
        try:
            return input(question).strip().lower()
        except EOFError:
            print()
            return ""

    def questioner(self) -> Questioner | None:
        """The differ's questions asked at the terminal; None when it is not one."""
        from schemashift.autodetect.questioner import TerminalQuestioner

        return TerminalQuestioner() if self.can_ask() else None


# --------------------------------------------------------------------------- commands


def _project(args: argparse.Namespace) -> api.Project:
    from schemashift import api

    return api.open_project(config_path=args.config, env=args.env, url=args.url)


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from schemashift.config import write_initial_config
    from schemashift.errors import ConfigError

    if args.config:
        raise ConfigError("init writes ./schemashift.toml; run it in the project folder without --config")
    path = write_initial_config(Path.cwd(), args.models, args.url)
    _out(f"created {path.name} and migrations/")
    if not args.models:
        _out(f"next: set `models` in {path.name}, then run `schemashift generate -m \"initial\"`")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    from schemashift import api

    written = api.generate(
        _project(args), args.message, empty=args.empty, rename_tables=args.rename_tables,
        rename_columns=args.rename_columns, no_rename=args.no_rename, defaults=dict(args.defaults),
        interactive=True, out=_out, prompter=TerminalPrompter(),
    )
    if written is not None and not args.empty:
        _lint_new(args)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from schemashift import api

    return EXIT_OK if api.check(_project(args), out=_out) else EXIT_DIFFERENCES


def _manifest_note(project: api.Project) -> None:
    """One line on stderr when the command found `schemashift.sum` stale, or created it."""
    from schemashift.history.manifest import CREATED, MANIFEST_NAME, STALE, STALE_MESSAGE

    state = project.manifest_state
    if state == STALE:
        print(f"{PROG}: {STALE_MESSAGE}", file=sys.stderr, flush=True)
    elif state == CREATED:
        print(f"{PROG}: wrote {MANIFEST_NAME} in the migrations folder: commit it with the migrations",
              file=sys.stderr, flush=True)


def _fleet(args: argparse.Namespace) -> bool:
    """True when the command runs on tenants (--tenant or --all-tenants); refuses what does not go with them."""
    from schemashift.errors import SchemashiftError

    if not (args.tenants or args.all_tenants):
        if args.parallel != 1:
            raise SchemashiftError("--parallel goes with --all-tenants or --tenant")
        return False
    if args.tenants and args.all_tenants:
        raise SchemashiftError("give --tenant NAME or --all-tenants, not both")
    if getattr(args, "sql", False) or getattr(args, "dry_run", False) or getattr(args, "from_revision", None):
        raise SchemashiftError("--sql, --from and --dry-run work on one database: not with --tenant or --all-tenants")
    return True


def _fleet_progress(args: argparse.Namespace) -> Callable[[int, int, Any], None] | None:
    """A one-line count of finished tenants on stderr, at a terminal only (and not with --quiet or --json)."""
    if args.quiet or getattr(args, "json", False) or not _is_terminal(sys.stderr):
        return None

    def progress(done: int, total: int, result: Any) -> None:
        mark = "ok" if result.ok else "FAILED"
        end = "\n" if done == total else ""
        sys.stderr.write(f"\r\x1b[K[{done}/{total}] {result.tenant}: {mark}{end}")
        sys.stderr.flush()
    return progress


def _fleet_report(args: argparse.Namespace, report: Any) -> int:
    """Print the summary table (or JSON) of a fleet run; its exit code."""
    if getattr(args, "json", False):
        _print_json(report.as_dict())
    elif args.quiet:  # only the failed tenants' rows and the totals
        lines = report.lines()
        failed = {result.tenant for result in report.failed}
        _print_lines([line for line in lines[1:-1] if line.split(" ", 1)[0] in failed] + lines[-1:])
    else:
        _print_lines(report.lines())
    return int(report.exit_code)


def cmd_fleet(args: argparse.Namespace) -> int:
    """upgrade, downgrade, status, diff, verify on tenants (see `schemashift.services.fleet`)."""
    if args.command == "upgrade":
        from schemashift.runtime.fast import fast_fleet_upgrade

        clean = fast_fleet_upgrade(args)  # every tenant clean at head: no SQLAlchemy, one query per 500 tenants
        if clean is not None:
            return _fleet_report(args, clean)
    from schemashift.services import fleet

    project = _project(args)
    options: dict[str, Any] = {"tenants": args.tenants, "parallel": args.parallel,
                               "progress": _fleet_progress(args)}
    if args.command in ("upgrade", "downgrade"):
        options.update(yes=args.yes, allow_data_loss=args.allow_data_loss, prompter=TerminalPrompter())
        report = (fleet.upgrade if args.command == "upgrade" else fleet.downgrade)(project, args.target, **options)
    elif args.command == "status":
        report = fleet.status(project, **options)
    elif args.command == "diff":
        report = fleet.diff(project, against=args.against, **options)
    else:
        report = fleet.verify(project, accept=args.accept, **options)
    return _fleet_report(args, report)


def cmd_upgrade(args: argparse.Namespace) -> int:
    if _fleet(args):
        return cmd_fleet(args)
    from schemashift.planning.offline import cached_script
    from schemashift.runtime.fast import fast_upgrade

    script = cached_script(args)  # `--sql --from REV` compiled before: no SQLAlchemy, no migration modules
    if script is not None:
        _out(script)
        return EXIT_OK
    with _reporter(args) as reporter:
        code = fast_upgrade(args, reporter.line)
        if code is not None:
            return code
        # the service itself, not `api`: importing every other command's module costs a fresh build ~0.03 s
        from schemashift.services.migrate import upgrade
        from schemashift.services.project import open_project

        project = open_project(config_path=args.config, env=args.env, url=args.url)
        upgrade(project, args.target, sql=args.sql, dry_run=args.dry_run, yes=args.yes,
                allow_data_loss=args.allow_data_loss, out=reporter.line, from_revision=args.from_revision,
                reporter=reporter, prompter=TerminalPrompter(), step_by_step=args.step_by_step)
    if not args.quiet:
        _manifest_note(project)
    return EXIT_OK


def _reporter(args: argparse.Namespace) -> Reporter:
    """How a migrating command shows its run: live at a terminal, plain lines, or (--quiet) only the last line.

    SQL printed with --sql and the plan of --dry-run are output, never progress: plain lines then.
    """
    from schemashift.support.progress import Reporter, reporter_for

    if getattr(args, "sql", False) or getattr(args, "dry_run", False):
        return Reporter(_out)
    return reporter_for(quiet=args.quiet, out=_out)


def cmd_downgrade(args: argparse.Namespace) -> int:
    from schemashift import api

    if _fleet(args):
        return cmd_fleet(args)

    with _reporter(args) as reporter:
        api.downgrade(_project(args), args.target, sql=args.sql, dry_run=args.dry_run, yes=args.yes,
                      allow_data_loss=args.allow_data_loss, out=reporter.line, from_revision=args.from_revision,
                      reporter=reporter, prompter=TerminalPrompter())
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    if _fleet(args):
        return cmd_fleet(args)
    from schemashift.runtime.fast import fast_status


    code = fast_status(args, _out)
    if code is not None:
        return code
    from schemashift import api

    project = _project(args)
    report = api.status(project)
    _emit(args, report.as_dict(), report.lines())
    _manifest_note(project)
    return report.exit_code


def cmd_manifest(args: argparse.Namespace) -> int:
    from schemashift.config import load_config
    from schemashift.services.manifest import manifest  # not through api: no SQLAlchemy for this one

    return EXIT_OK if manifest(load_config(args.config), check=args.check, out=_out) else EXIT_DIFFERENCES


def cmd_history(args: argparse.Namespace) -> int:
    from schemashift import api

    rows = api.history(_project(args), applied=args.applied)
    if args.graph and not args.applied and not args.json:
        from schemashift.services.erd import history_graph

        _print_lines(history_graph([(row["revision"], row["parent"], row["message"]) for row in rows]))
        return EXIT_OK
    _emit(args, rows, [_row_text(_noted(row)) for row in rows])
    return EXIT_OK


def _noted(row: dict[str, Any]) -> dict[str, Any]:
    """A history row for reading: its ``error`` column is a note (``fresh build …``, ``baseline``) unless it failed."""
    if "outcome" not in row or row["outcome"] == "failed" or row.get("error") is None:
        return row
    return {("note" if key == "error" else key): value for key, value in row.items()}


def cmd_lint(args: argparse.Namespace) -> int:
    from schemashift import api
    from schemashift.planning.lint import as_json, as_sarif, failing

    project = _project(args)
    findings = api.lint(project, args.range, every=args.every)
    if args.json:
        print(as_json(findings))
    elif args.sarif:
        print(as_sarif(findings, project.config.migrations_dir.name))
    else:
        _print_lines([finding.line() for finding in findings])
        bad = len(failing(findings))
        _out(f"{len(findings)} finding(s), {bad} not allowed." if findings else "No findings.")
    return EXIT_DIFFERENCES if failing(findings) else EXIT_OK


def _lint_new(args: argparse.Namespace) -> None:
    """Print the lint findings of the migration `generate` just wrote (for the environment's database)."""
    from schemashift import api
    from schemashift.errors import SchemashiftError

    try:
        findings = api.lint(_project(args), "head")
    except SchemashiftError:
        return  # no URL to name the database, or the like: generating still worked
    for finding in findings:
        _out(f"lint: {finding.line()}")


def cmd_erd(args: argparse.Namespace) -> int:
    from schemashift import api

    print(api.erd(_project(args), fmt=args.format, live=args.live), end="")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from schemashift import api

    if _fleet(args):
        return cmd_fleet(args)

    report = api.diff(_project(args), against=args.against)
    _emit(args, report.as_dict(), report.lines())
    return EXIT_OK if report.empty else EXIT_DIFFERENCES


def cmd_envs(args: argparse.Namespace) -> int:
    from schemashift import api
    from schemashift.config import load_config
    from schemashift.services.environments import table_lines

    rows = api.envs(load_config(args.config), env=args.env)  # not _project(): no environment need be valid
    _emit(args, rows, table_lines(rows))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from schemashift import api

    if _fleet(args):
        return cmd_fleet(args)

    if not args.json:
        return EXIT_OK if api.verify(_project(args), accept=args.accept, out=_out) else EXIT_DIFFERENCES
    lines: list[str] = []
    ok = api.verify(_project(args), accept=args.accept, out=lines.append)
    _print_json({"ok": ok, "problems": [line[len("PROBLEM: "):] for line in lines if line.startswith("PROBLEM: ")],
                 "messages": [line for line in lines if not line.startswith("PROBLEM: ")]})
    return EXIT_OK if ok else EXIT_DIFFERENCES


def cmd_repair(args: argparse.Namespace) -> int:
    from schemashift import api

    with _reporter(args) as reporter:
        api.repair(_project(args), action=args.action, out=reporter.line, reporter=reporter,
                   prompter=TerminalPrompter())
    return EXIT_OK


def cmd_rebase(args: argparse.Namespace) -> int:
    from schemashift import api

    api.rebase(_project(args), out=_out)
    return EXIT_OK


def cmd_squash(args: argparse.Namespace) -> int:
    from schemashift import api

    api.squash(_project(args), args.message, start=args.start, end=args.end, out=_out)
    return EXIT_OK


def cmd_test_migrations(args: argparse.Namespace) -> int:
    from schemashift import api

    return EXIT_OK if api.test_migrations(_project(args), out=_out) else EXIT_DIFFERENCES


def cmd_baseline(args: argparse.Namespace) -> int:
    from schemashift import api

    api.baseline(_project(args), args.message, after=args.after, alembic_dir=args.alembic_dir,
                 drop_alembic_version=args.drop_alembic_version, out=_out, yes=args.yes, prompter=TerminalPrompter())
    return EXIT_OK


def cmd_stamp(args: argparse.Namespace) -> int:
    from schemashift import api

    api.stamp(_project(args), args.revision, force=args.force, alembic_dir=args.alembic_dir,
              drop_alembic_version=args.drop_alembic_version, out=_out, yes=args.yes, prompter=TerminalPrompter())
    return EXIT_OK


def cmd_backups(args: argparse.Namespace) -> int:
    from schemashift import api

    project = _project(args)
    if args.backups_command == "list":
        rows = api.backups_list(project)
        _emit(args, rows, [_row_text(row) for row in rows])
    else:
        count = api.backups_prune(project, args.older_than, out=_out)
        _out(f"pruned {count} backup(s)")
    return EXIT_OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": cmd_init, "generate": cmd_generate, "check": cmd_check, "upgrade": cmd_upgrade,
    "downgrade": cmd_downgrade, "status": cmd_status, "history": cmd_history, "diff": cmd_diff,
    "envs": cmd_envs, "verify": cmd_verify, "repair": cmd_repair, "test-migrations": cmd_test_migrations,
    "backups": cmd_backups, "rebase": cmd_rebase, "squash": cmd_squash, "manifest": cmd_manifest, "erd": cmd_erd,
    "lint": cmd_lint, "baseline": cmd_baseline, "stamp": cmd_stamp,
}


# --------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse `argv`, filling global options that were not given with their defaults."""
    args = build_parser().parse_args(argv)
    for name in ("config", "env", "url"):
        setattr(args, name, getattr(args, name, None))
    args.debug = getattr(args, "debug", False)
    args.quiet = getattr(args, "quiet", False)
    return args


def _error(kind: str, exc: BaseException, debug: bool) -> None:
    from schemashift.errors import mask_secrets

    if debug:
        import traceback

        sys.stderr.write(mask_secrets("".join(traceback.format_exception(exc))))
    if kind == "error":
        message = str(exc)
    elif kind == "database error":
        message = str(getattr(exc, "orig", None) or exc)
    else:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    one_line = " ".join(part.strip() for part in mask_secrets(message).splitlines() if part.strip())
    print(f"{PROG}: {kind}: {one_line}", file=sys.stderr, flush=True)


def _file_error(exc: OSError) -> Exception:
    """`exc` as one readable sentence: what went wrong with which path."""
    return Exception(f"{exc.strerror or type(exc).__name__}: {exc.filename}")


#: SQLAlchemy driver names of async DB-API adapters (``dialect+driver://`` URLs).
ASYNC_DRIVERS = frozenset({"asyncpg", "psycopg_async", "aiosqlite", "aiomysql", "asyncmy", "aioodbc", "oracledb_async"})


def _read_config(args: argparse.Namespace) -> None:
    """Replace the ``--config`` path in `args` by the configuration it names, read here once for the command.

    Everything after (`load_config`, `open_project`, the fast paths) takes the loaded
    `Config` as it is. A configuration that cannot be read is left to the command,
    which reports the error where it needs the configuration. `init` reads none: it writes one.
    """
    if args.command == "init":
        return
    from contextlib import suppress

    from schemashift.config import load_config
    from schemashift.errors import SchemashiftError

    with suppress(SchemashiftError):  # an unreadable configuration is reported by the command, in its place
        args.config = load_config(args.config)


def _uses_async_driver(args: argparse.Namespace) -> bool:
    """True when the command's database URL names an async driver (then it runs on an event loop)."""
    if args.command in ("init", "manifest", "rebase", "squash", "generate", "check"):
        return False
    url = args.url
    if not url:
        from schemashift.config import Config
        from schemashift.errors import SchemashiftError

        if not isinstance(args.config, Config):
            return False  # unreadable: the command reports the configuration error itself
        try:
            url = args.config.env(args.env).url
        except SchemashiftError:
            return False  # the command reports the configuration error itself
    scheme = url.split("://", 1)[0] if url else ""
    return scheme.partition("+")[2] in ASYNC_DRIVERS  # a name check: `--help`-cheap paths import no SQLAlchemy


def _is_database_error(exc: BaseException) -> bool:
    """True for an error the database raised (permissions, locks, a server gone away)."""
    sqlalchemy = sys.modules.get("sqlalchemy")
    return sqlalchemy is not None and isinstance(exc, sqlalchemy.exc.DBAPIError)


def _quiet_sqlalchemy_warnings() -> None:
    """Send SQLAlchemy's warnings (unknown reflected types, models it would build otherwise…) to the
    ``schemashift`` logger at DEBUG instead of stderr; other warnings show as usual."""
    import logging
    import warnings

    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if category.__module__.startswith("sqlalchemy"):
            logging.getLogger("schemashift").debug("SQLAlchemy warning: %s", message)
            return
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def run() -> typing.NoReturn:
    """The `schemashift` command (and ``python -m schemashift``): `main`, then the process ends without the
    interpreter's teardown.

    A command leaves a large heap behind (a fresh build: its planned statements and
    schemas, SQLAlchemy's tables and caches); the interpreter freed it object by object
    at exit, 0.15-0.25 s of a 3,000-revision build. The process ends as it would
    (non-daemon threads joined, every exit hook run: the caches are saved), output
    flushed, and then at once (`_end_at_once`, the first exit hook registered, so the last to run; when
    another was registered before `run`, the interpreter ends the process as usual).
    """
    import atexit

    code: list[int] = []
    if not _exit_hooks_registered():  # one registered earlier (coverage, a sitecustomize) would run after the end
        atexit.register(_end_at_once, code)
    code.append(main())
    raise SystemExit(code[0])


def _exit_hooks_registered() -> bool:
    """Whether any exit hook is registered (CPython says; elsewhere: assume so, and end as usual)."""
    import atexit

    try:
        return bool(atexit._ncallbacks())
    except AttributeError:
        return True


def _end_at_once(code: list[int]) -> None:
    """Flush the output and end the process with `code`'s exit code (none: the process is ending on an
    error `run` did not see, and the interpreter finishes normally)."""
    if not code:
        return
    import os
    from contextlib import suppress

    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    status = code[0]
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader gone (as `main` treats it) or a closed stream
            pass
        except OSError as exc:  # e.g. a full disk: the output is lost, which the exit code must tell (as the
            status = 120  # interpreter's own end does)
            with suppress(OSError, ValueError):
                sys.stderr.write(f"{PROG}: error: could not write the output: {exc}\n")
                sys.stderr.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    relax_for_process()
    if not debug:
        _quiet_sqlalchemy_warnings()
    try:
        try:
            args = parse_args(argv)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
        debug = args.debug
        handler = HANDLERS[args.command]
        _read_config(args)
        if _uses_async_driver(args):
            from schemashift.aio import run_command

            return run_command(handler, args)
        return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - broad on purpose: the one place that turns exceptions into exit codes
        from schemashift.errors import SchemashiftError

        if isinstance(exc, SchemashiftError):
            _error("error", exc, debug)
            return exc.exit_code
        if _is_database_error(exc):
            _error("database error", exc, debug)
            return EXIT_USAGE
        if isinstance(exc, OSError) and exc.filename:  # a file or folder we could not read or write
            _error("error", _file_error(exc), debug)
            return EXIT_USAGE
        _error("internal error", exc, debug)
        return EXIT_INTERNAL
