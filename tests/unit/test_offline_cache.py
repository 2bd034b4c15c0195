"""Cached offline scripts (`upgrade --sql --from REV`) equal a cold compile and follow every change.

The cold script is compiled with no cache folder at all; the cached one comes
from `offline.cached_script` (the CLI's first step), which must answer exactly
the same text, or None, never something else: after an edited, renamed, added or
reordered migration, other settings (version table, keep_data,
--allow-data-loss, dialect) or another code version.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from databases.test_fastpaths import random_history
from schemashift import api, cli
from schemashift.history import cache, manifest
from schemashift.history.writer import write_migration
from schemashift.migration import AddColumn, Column, CreateTable, PrimaryKey, Table, Type
from schemashift.model.schema import Computed, Identity
from schemashift.planning import offline

URLS = {
    "sqlite": "sqlite:///nowhere.db",
    "postgresql": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    "mysql": "mysql+pymysql://nobody@127.0.0.1:1/none",
    "mariadb": "mariadb+pymysql://nobody@127.0.0.1:1/none",
}


#: Drops neither kept nor refused: blocks that keep data are never cached (see `test_kept_data_is_never_cached`).
LOSSY = """
    default_env = "t"
    [env.t]
    keep_data = false
    allow_data_loss = true
"""


def _project(root: Path, seed: int, length: int, settings: str = LOSSY) -> Path:
    root.mkdir(parents=True)
    random_history(root / "migrations", seed, length)
    manifest.rebuild(root / "migrations")
    (root / "schemashift.toml").write_text('migrations = "migrations"\n' + textwrap.dedent(settings))
    return root


def _argv(root: Path, url: str, *more: str) -> list[str]:
    return ["--config", str(root / "schemashift.toml"), "upgrade", "--sql", "--url", url, *more]


def _cold(root: Path, url: str, *more: str) -> str:
    """The script compiled with no cache folder (nothing read, nothing left behind)."""
    shutil.rmtree(root / cache.CACHE_NAME, ignore_errors=True)
    args = cli.parse_args(_argv(root, url, *more))
    lines: list[str] = []
    api.upgrade(api.open_project(args.config, url=args.url), args.target, sql=True, out=lines.append,
                from_revision=args.from_revision, allow_data_loss=args.allow_data_loss)
    shutil.rmtree(root / cache.CACHE_NAME, ignore_errors=True)
    return "\n".join(lines)


def _cached(root: Path, url: str, *more: str) -> str | None:
    return offline.cached_script(cli.parse_args(_argv(root, url, *more)))


def _run(root: Path, url: str, *more: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`schemashift upgrade --sql …` through the CLI entry point (cached or not)."""
    capsys.readouterr()
    assert cli.main(_argv(root, url, *more)) == 0
    return capsys.readouterr().out.rstrip("\n")


@pytest.mark.parametrize("backend", sorted(URLS))
@pytest.mark.parametrize("seed", [4, 5])
def test_cached_script_equals_cold_compile(tmp_path: Path, backend: str, seed: int,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "proj", seed, 30)
    url = URLS[backend]
    revisions = [entry.revision for entry in manifest.read(root / "migrations")]
    for more in (["--from", "base"], ["--from", revisions[9]], ["--from", "base", revisions[19]],
                 ["--from", revisions[3], revisions[25]]):
        cold = _cold(root, url, *more)
        assert _cached(root, url, *more) is None  # nothing cached yet
        assert _run(root, url, *more, capsys=capsys) == cold  # compiled, and remembered
        assert _cached(root, url, *more) == cold
        assert _run(root, url, *more, capsys=capsys) == cold
    # a wider range than compiled so far is compiled again, then cached as a whole
    _cold(root, url, "--from", revisions[9])
    _run(root, url, "--from", revisions[9], capsys=capsys)
    assert _cached(root, url, "--from", "base") is None
    full = _run(root, url, "--from", "base", capsys=capsys)
    assert _cached(root, url, "--from", "base") == full == _cold(root, url, "--from", "base")


def test_cache_follows_edits_of_the_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "proj", 6, 12)
    folder = root / "migrations"
    url = URLS["postgresql"]
    _run(root, url, "--from", "base", capsys=capsys)
    assert _cached(root, url, "--from", "base") is not None
    _run(root, url, "--from", "base", "--step-by-step", capsys=capsys)  # every step's block (a fresh build above)

    # an edited file: the manifest no longer matches, so the cache is not even consulted
    files = sorted(folder.glob("0*.py"))
    edited = files[5]
    edited.write_text(edited.read_text().replace('message = "', 'message = "edited '))
    assert _cached(root, url, "--from", "base") is None
    manifest.rebuild(folder)  # now the manifest matches again: the edited block and every later one are stale
    assert _cached(root, url, "--from", "base") is None
    assert _cached(root, url, "--from", manifest.read(folder)[3].revision, manifest.read(folder)[4].revision) is not None
    fresh = _run(root, url, "--from", "base", capsys=capsys)
    assert "edited " in fresh and fresh == _cold(root, url, "--from", "base")
    _run(root, url, "--from", "base", capsys=capsys)
    assert _cached(root, url, "--from", "base") == fresh

    # a renamed file (same content, same chain): its step's label changes (a fresh build names its first and last)
    _run(root, url, "--from", "base", "--step-by-step", capsys=capsys)
    assert _cached(root, url, "--from", "base", "--step-by-step") is not None
    renamed = files[2].with_name(files[2].name.replace("step", "renamed"))
    files[2].rename(renamed)
    manifest.rebuild(folder)
    assert _cached(root, url, "--from", "base", "--step-by-step") is None
    assert "renamed" in _run(root, url, "--from", "base", "--step-by-step", capsys=capsys)
    built = _cached(root, url, "--from", "base")
    assert built is not None and built == _cold(root, url, "--from", "base")
    _run(root, url, "--from", "base", capsys=capsys)

    # a new migration at the end: earlier blocks stay cached, the new one is compiled
    head = manifest.read(folder)[-1].revision
    write_migration(folder, "added", [CreateTable(Table("added", columns=(Column("id", Type("integer"), nullable=False),),
                                                        primary_key=PrimaryKey(("id",))))], head)
    assert _cached(root, url, "--from", "base", head) is not None
    assert _cached(root, url, "--from", "base") is None
    script = _run(root, url, "--from", "base", capsys=capsys)
    assert _cached(root, url, "--from", "base") == script == _cold(root, url, "--from", "base")


def test_cache_is_per_setting_and_code_version(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "proj", 7, 15, settings="""
        default_env = "a"
        [env.a]
        url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
        [env.b]
        url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
        version_table = "other_versions"
        [env.c]
        url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
        keep_data = false
        allow_data_loss = true
    """)
    config = str(root / "schemashift.toml")

    def run(*argv: str) -> str:
        capsys.readouterr()
        assert cli.main(["--config", config, *argv, "upgrade", "--sql", "--from", "base"]) == 0
        return capsys.readouterr().out

    def cached(*argv: str) -> str | None:
        return offline.cached_script(cli.parse_args(["--config", config, *argv, "upgrade", "--sql", "--from", "base"]))

    first = run()
    assert cached() == first.rstrip("\n")
    assert cached("--env", "b") is None and cached("--env", "c") is None
    assert cached("--url", URLS["sqlite"]) is None
    assert "other_versions" in run("--env", "b") and cached() == first.rstrip("\n")
    monkeypatch.setattr(cache, "source_key", lambda: "another-code")  # another schemashift or SQLAlchemy
    assert cached() is None


def test_cached_script_imports_no_sqlalchemy(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", 8, 10)
    argv = _argv(root, URLS["mysql"], "--from", "base")
    code = textwrap.dedent(f"""
        import sys
        from schemashift import cli
        assert cli.main({argv!r}) == 0
        print("sqlalchemy loaded:", "sqlalchemy" in sys.modules, [m for m in sys.modules if m.startswith("_schemashift_migration")])
    """)
    runs = [subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    assert "sqlalchemy loaded: True" in runs[0].stdout  # the cold run compiles
    assert "sqlalchemy loaded: False []" in runs[1].stdout
    script = lambda out: out[: out.index("sqlalchemy loaded")]  # noqa: E731
    assert script(runs[0].stdout) == script(runs[1].stdout)


def test_unknown_names_and_refusals_take_the_full_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "proj", 9, 8)
    url = URLS["sqlite"]
    _run(root, url, "--from", "base", capsys=capsys)
    revisions = [entry.revision for entry in manifest.read(root / "migrations")]
    assert _cached(root, url, "--from", revisions[2][:8]) is None  # prefixes are resolved by the full path
    assert _cached(root, url, "--from", revisions[5], revisions[2]) is None  # not an upgrade
    assert _cached(root, url, "--from", revisions[-1]) is None  # nothing to do
    assert _cached(root, url, "--from", "base", "-1") is None
    assert offline.cached_script(cli.parse_args(_argv(root, url))) is None  # no --from: reads the database
    assert offline.cached_script(cli.parse_args(["--config", str(root / "schemashift.toml"), "upgrade", "--url", url,
                                                 "--from", "base"])) is None  # no --sql


def test_kept_data_is_never_cached(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "proj", 4, 30, settings="")  # keep_data on: drops are kept in backup tables
    url = URLS["postgresql"]
    script = _run(root, url, "--from", "base", "--step-by-step", capsys=capsys)  # (a fresh build drops nothing)
    assert "schemashift_backups" in script  # the seed drops something
    assert _cached(root, url, "--from", "base", "--step-by-step") is None
    blocks = script.split("\n\n-- apply ")[1:]
    first = next(index for index, block in enumerate(blocks) if "schemashift_backups" in block)
    assert first > 0
    before = manifest.read(root / "migrations")[first - 1].revision
    assert _cached(root, url, "--from", "base", before, "--step-by-step") is not None  # the blocks before it


# --------------------------------------------------------------------------- ADD COLUMN without the whole table

ADDED = [
    Column("plain", Type("integer")),
    Column("required", Type("string", length=40), nullable=False, default="'x'"),
    Column("noted", Type("text"), comment="it's noted"),
    Column("money", Type("numeric", precision=10, scale=2), nullable=False, default="0"),
    Column("stamp", Type("datetime", timezone=True), default="CURRENT_TIMESTAMP"),
    Column("flag", Type("boolean"), nullable=False, default="false"),
    Column("mood", Type("enum", values=("sad", "ok"), name="mood")),
    Column("moods", Type("array", item=Type("enum", values=("sad", "ok"), name="mood"))),
    Column("doubled", Type("integer"), computed=Computed('"plain" * 2')),
    Column("stored", Type("integer"), computed=Computed('"plain" + 1', persisted=True)),
    Column("ident", Type("bigint"), nullable=False, identity=Identity(always=True, start=5)),
    Column("counter", Type("bigint"), nullable=False, sequence="counter_seq"),
    Column("auto", Type("integer"), nullable=False, autoincrement=True),
    Column("doc", Type("json")),
    Column("raw", Type("other", sql="CITEXT")),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
@pytest.mark.parametrize("schema_name", [None, "app"])
def test_added_column_compiles_as_in_its_whole_table(backend: str, schema_name: str | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from schemashift.dialects import get_dialect
    from schemashift.dialects.base import Dialect
    from schemashift.migration import ForeignKey, Index, UniqueConstraint
    from schemashift.model.schema import Schema

    dialect = get_dialect(backend)
    parent = Table("parent", columns=(Column("id", Type("integer"), nullable=False),), primary_key=PrimaryKey(("id",)),
                   schema=schema_name)
    keys = [PrimaryKey(("id",)), PrimaryKey(("id", "plain")), None]
    whole = Dialect.added_column
    checked: list[object] = []

    def table_always(self: Dialect, table: Table, name: str, schema: Schema) -> object:
        return self.sa_table_for(table, schema, include_indexes=False).c[name]

    for key in keys:
        base = Table("child", columns=(Column("id", Type("integer"), nullable=False, autoincrement=True),
                                       Column("parent_id", Type("integer"))),
                     primary_key=key, uniques=(UniqueConstraint(("parent_id",), "uq_child_parent"),),
                     foreign_keys=(ForeignKey(("parent_id",), "parent", ("id",), name="fk_child_parent",
                                              ref_schema=schema_name),),
                     indexes=(Index("ix_child_parent", ("parent_id",)),), schema=schema_name)
        state = Schema(tables={parent.key: parent, base.key: base})
        for column in ADDED:
            if key is not None and "plain" in key.columns and column.name != "plain":
                continue  # that key needs the column `plain` (added here, in the key)
            op = AddColumn("child", column, schema=schema_name)
            after = op.apply(state)
            compiled = []
            for variant in (whole, table_always):
                monkeypatch.setattr(Dialect, "added_column", variant)
                try:
                    compiled.append(dialect.compile(op, state, after))
                except Exception as exc:  # noqa: BLE001 - both ways must fail alike
                    compiled.append(f"{type(exc).__name__}: {exc}")
            assert compiled[0] == compiled[1], (backend, column, key)
            checked.append(compiled[0])
    assert sum(isinstance(result, list) for result in checked) >= 24  # most compile (arrays, enums… not everywhere)
