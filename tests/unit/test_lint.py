"""Lint: rule codes per operation, suppression, JSON/SARIF, raw SQL via pglast, and squawk as an oracle.

The oracle: for a catalogue of one-change migrations on an existing PostgreSQL table,
`upgrade --sql` gives the plain SQL; squawk (a PostgreSQL migration linter) is run on
it, and for every squawk rule of the mapped kinds `schemashift lint` must report the
corresponding code for that migration. No database is needed.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from helpers import cli, set_models, write_project

BASE = '''
import sqlalchemy as sa

Base = sa.MetaData()
t = sa.Table("t", Base, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(80)),
             sa.Column("b", sa.Integer), sa.Column("c", sa.String(20)), {extra_t}
             {extra_cols})
u = sa.Table("u", Base, sa.Column("id", sa.Integer, primary_key=True))
{extra}
'''


def models(extra_cols: str = "", extra: str = "", extra_t: str = "") -> str:
    return BASE.format(extra_cols=extra_cols, extra=extra, extra_t=extra_t)


#: name -> (models after the change, our codes the migration must have, squawk rules it may raise)
CATALOGUE = {
    "add_index": (models(extra='sa.Index("ix_t_a", t.c.a)'), {"SS201"}),
    "add_unique": (models(extra='sa.UniqueConstraint(t.c.a, name="uq_t_a")'), {"SS207"}),
    "add_fk": (models(extra='sa.ForeignKeyConstraint([t.c.b], [u.c.id], name="fk_t_b")'), {"SS202"}),
    "add_check": (models(extra='sa.CheckConstraint("b > 0", name="ck_t_b", table=t)'), {"SS203"}),
    "set_not_null": (models().replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.Integer, nullable=False)'), {"SS204"}),
    "widen_int": (models().replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.BigInteger)'), {"SS205"}),
    "narrow_string": (models().replace('sa.String(80)', 'sa.String(40)'), {"SS103", "SS205"}),
    "add_required": (models(extra_cols='sa.Column("n", sa.Integer, nullable=False),'), {"SS303"}),
    "add_volatile_default": (models(extra_cols='sa.Column("r", sa.Float, server_default=sa.text("random()")),'), {"SS206"}),
    "drop_column": (models().replace('sa.Column("c", sa.String(20)), ', ''), {"SS102"}),
    "drop_table": (models().split("u = sa.Table")[0], {"SS101"}),
    "rename_column": (models().replace('sa.Column("c", sa.String(20))', 'sa.Column("c2", sa.String(20))'), {"SS302"}),
    "rename_table": (models().replace('sa.Table("t"', 'sa.Table("t2"'), {"SS301"}),
}
#: name -> how `generate` is told of the change (default: no rename guessed)
GENERATE_FLAGS = {"rename_column": ["--rename-column", "t.c:c2"], "rename_table": ["--rename-table", "t:t2"]}
#: squawk rule -> the codes of ours that stand for it
SQUAWK_TO_OURS = {
    "require-concurrent-index-creation": {"SS201"}, "adding-foreign-key-constraint": {"SS202"},
    "constraint-missing-not-valid": {"SS202", "SS203", "SS207"}, "adding-not-nullable-field": {"SS204"},
    "changing-column-type": {"SS205"}, "disallowed-unique-constraint": {"SS207"},
    "adding-field-with-default": {"SS206"}, "adding-serial-primary-key-field": {"SS206", "SS207"},
    "ban-drop-column": {"SS102"}, "ban-drop-table": {"SS101"}, "renaming-column": {"SS302"},
    "renaming-table": {"SS301"}, "require-lock-timeout": {"SS208"}, "require-statement-timeout": {"SS209"},
    "adding-required-field": {"SS303"},
}
PG = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # names the dialect; lint and --sql --from never connect


PLAIN = "safe = false\n"  # the plain statements (safe mode has its own tests: tests/databases/test_safe_mode.py)


def project_with(tmp_path: Path, after: str, *, config: str = PLAIN, flags: tuple[str, ...] = ("--no-rename",),
                 url: str = PG, before: str | None = None) -> Path:
    directory = write_project(tmp_path, url, models() if before is None else before, extra_config=config)
    cli(directory, "generate", "-m", "base")
    set_models(directory, after)
    fills = ["--default", "t.n=0"] if 'sa.Column("n"' in after else []
    cli(directory, "generate", "-m", "change", *flags, *fills)
    return directory


def catalogue_project(tmp_path: Path, name: str, *, config: str = PLAIN) -> Path:
    """The project of catalogue entry `name`: its base applied nowhere, its change generated."""
    return project_with(tmp_path, CATALOGUE[name][0], config=config, flags=tuple(GENERATE_FLAGS.get(name, ["--no-rename"])))


def lint_codes(directory: Path, *args: str) -> set[str]:
    result = cli(directory, "lint", "head", "--json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    return {finding["code"] for finding in json.loads(result.stdout)}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_codes(name: str, tmp_path: Path) -> None:
    directory = catalogue_project(tmp_path, name)
    codes = lint_codes(directory)
    expected = CATALOGUE[name][1]
    assert expected <= codes, (name, codes)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_squawk_oracle(name: str, squawk: str, tmp_path: Path) -> None:
    """Every squawk rule the plain SQL raises has its code among ours."""
    directory = catalogue_project(tmp_path, name)
    base = sorted((directory / "migrations").glob("0001_*.py"))[0].name.split("_")[0]
    revision = cli(directory, "history", "--json")
    first = json.loads(revision.stdout)[0]["revision"]
    sql = cli(directory, "upgrade", "--sql", "--from", first).stdout
    script = tmp_path / f"{name}.sql"
    ours = ("schemashift_version", "_schemashift_")  # bookkeeping and kept-data statements are not the change
    script.write_text("\n".join(line for line in sql.splitlines() if not any(name in line for name in ours)))
    report = subprocess.run([squawk, "--reporter", "json", str(script)], capture_output=True, text=True, timeout=60)
    rules = {item["rule_name"] for item in json.loads(report.stdout or "[]")}
    found = lint_codes(directory)
    missed = {rule: SQUAWK_TO_OURS[rule] for rule in rules if rule in SQUAWK_TO_OURS and not SQUAWK_TO_OURS[rule] & found}
    assert not missed, (base, name, rules, found)


#: what safe mode's forms no longer deserve (tests/databases/test_safe_mode.py runs them)
SAFE_FIXED = {"add_index": {"SS201"}, "add_unique": {"SS207"}, "add_fk": {"SS202"}, "add_check": {"SS203"},
              "set_not_null": {"SS204"}, "add_volatile_default": {"SS206"}}


@pytest.mark.parametrize("config", ["safe = true\n", ""], ids=["safe", "default"])
@pytest.mark.parametrize("name", sorted(SAFE_FIXED))
def test_safe_mode_lint_judges_the_safe_statements(name: str, config: str, tmp_path: Path) -> None:
    """In safe mode (PostgreSQL's default) the codes of the plain forms are gone, and SS208 with them."""
    directory = catalogue_project(tmp_path, name, config=config)
    codes = lint_codes(directory)
    assert not codes & (SAFE_FIXED[name] | {"SS208"}), (name, codes)


def test_new_table_is_no_blocking_finding_and_generate_prints_lint(tmp_path: Path) -> None:
    directory = write_project(tmp_path, PG, models(), extra_config=PLAIN)
    first = cli(directory, "generate", "-m", "base")
    assert "lint: SS201" not in first.stdout and "SS202" not in first.stdout
    set_models(directory, models(extra='sa.Index("ix_t_a", t.c.a)'))
    second = cli(directory, "generate", "-m", "index")
    assert "lint: SS201" in second.stdout


def test_allow_suppresses_but_still_lists(tmp_path: Path) -> None:
    directory = project_with(tmp_path, models(extra='sa.Index("ix_t_a", t.c.a)'))
    path = sorted((directory / "migrations").glob("0002_*.py"))[0]
    text = path.read_text()
    start = text.index("    CreateIndex(")
    end = text.index("\n", text.index("),", start)) if "),\n" in text[start:] else len(text)
    call = text[start:end].rstrip(",").strip()
    path.write_text(text.replace(text[start:end], f'    allow({call}, SS201="t holds 40 rows", SS208="short", SS209="short"),'))
    cli(directory, "manifest")
    result = cli(directory, "lint", "head")
    assert result.returncode == 0 and "[allowed: t holds 40 rows]" in result.stdout, result.stdout
    sarif = json.loads(cli(directory, "lint", "head", "--sarif").stdout)
    results = sarif["runs"][0]["results"]
    assert any(r["ruleId"] == "SS201" and r["suppressions"][0]["justification"] == "t holds 40 rows" for r in results)


def test_raw_sql_is_parsed(tmp_path: Path) -> None:
    pytest.importorskip("pglast")
    directory = write_project(tmp_path, PG, models(), extra_config=PLAIN)
    cli(directory, "generate", "-m", "base")
    cli(directory, "generate", "--empty", "-m", "raw")
    path = sorted((directory / "migrations").glob("0002_*.py"))[0]
    path.write_text(path.read_text().replace("operations = []", 'operations = [ExecuteSQL("CREATE INDEX ix ON t (a); '
                                             'ALTER TABLE t ADD CONSTRAINT ck CHECK (b > 0) NOT VALID", reverse=""), '
                                             'ExecuteSQL("THIS IS NOT SQL", reverse="")]'))
    cli(directory, "manifest")
    codes = lint_codes(directory)
    assert {"SS201", "SS501"} <= codes and "SS203" not in codes


def test_mysql_copy_rules(tmp_path: Path) -> None:
    directory = write_project(tmp_path, "mysql+pymysql://nobody@127.0.0.1:1/none", models())
    cli(directory, "generate", "-m", "base")
    set_models(directory, models().replace('sa.Column("b", sa.Integer)', 'sa.Column("b", sa.BigInteger)')
               .replace("sa.String(20)", "sa.String(30)"))
    cli(directory, "generate", "-m", "change")
    findings = json.loads(cli(directory, "lint", "head", "--json", check=False).stdout)
    assert [(f["code"], "t.b" in f["what"]) for f in findings] == [("SS401", True)], findings


MYSQL = "mysql+pymysql://nobody@127.0.0.1:1/none"
ENUM = 'sa.Column("e", sa.Enum("x", "y", "z", name="e_kind")),'


@pytest.mark.parametrize(("url", "after", "expected"), [
    (PG, models(extra_cols=ENUM.replace(', "z"', "")), {"SS104"}),
    (MYSQL, models(extra_cols=ENUM.replace('"x", "y", "z"', '"y", "x", "z"')), {"SS402"}),
    (MYSQL, models(extra='sa.ForeignKeyConstraint([t.c.b], [u.c.id], name="fk_t_b")'), {"SS403"}),
    (MYSQL, models(extra='sa.CheckConstraint("b > 0", name="ck_t_b", table=t)'), {"SS403"}),
], ids=["enum_value_removed", "mysql_enum_reordered", "mysql_fk", "mysql_check"])
def test_enum_and_mysql_codes(url: str, after: str, expected: set[str], tmp_path: Path) -> None:
    before = models(extra_cols=ENUM) if "sa.Enum" in after else models()
    directory = project_with(tmp_path, after, url=url, before=before, config="")
    assert expected <= lint_codes(directory)


def test_selection_default_all_and_ranges(tmp_path: Path) -> None:
    """Default: the migrations not yet applied to the environment's database; `--all`; `REV` alone; `REV..REV`
    with both ends included, either end left out; exit 1 only when the selection has a finding not allowed."""
    directory = write_project(tmp_path, f"sqlite:///{tmp_path / 'app.db'}", models())
    cli(directory, "generate", "-m", "base")
    current = models()
    for column in ("c", "b", "a"):  # one SS102 per migration
        current = re.sub(rf'sa.Column\("{column}", sa.\w+(\(\d+\))?\),\s*', "", current)
        set_models(directory, current)
        cli(directory, "generate", "-m", f"drop_{column}", "--no-rename")
    revisions = [row["revision"] for row in json.loads(cli(directory, "history", "--json").stdout)]
    cli(directory, "upgrade", revisions[1])

    def files(*args: str) -> list[str]:
        result = cli(directory, "lint", "--json", *args, check=False)
        assert result.returncode == (1 if json.loads(result.stdout) else 0), result
        return sorted({finding["file"][:4] for finding in json.loads(result.stdout)})

    assert files() == ["0003", "0004"]  # 0002 (drop c) is applied
    assert files("--all") == ["0002", "0003", "0004"]
    assert files(revisions[2]) == ["0003"]
    assert files(f"{revisions[1]}..{revisions[2]}") == ["0002", "0003"]
    assert files(f"..{revisions[1]}") == ["0002"]
    assert files(f"{revisions[3]}..") == ["0004"]
    assert files(revisions[0]) == []
    cli(directory, "upgrade")
    assert files() == []


def test_dropping_a_column_the_models_still_map(tmp_path: Path) -> None:
    """A hand-written DropColumn of a column the models still have: SS304 besides SS102 (a generated drop, of a
    column gone from the models, is SS102 only)."""
    directory = write_project(tmp_path, PG, models(), extra_config=PLAIN)
    cli(directory, "generate", "-m", "base")
    cli(directory, "generate", "--empty", "-m", "drop")
    path = sorted((directory / "migrations").glob("0002_*.py"))[0]
    path.write_text(path.read_text().replace("operations = []", 'operations = [DropColumn("t", "c")]'))
    cli(directory, "manifest")
    assert {"SS102", "SS304"} <= lint_codes(directory)
    generated = catalogue_project(tmp_path / "generated", "drop_column")
    assert "SS304" not in lint_codes(generated)


@pytest.mark.parametrize(("config", "table", "extra", "expected"), [
    (PLAIN, "u", "", True),
    ("", "u", "", True),  # safe mode, nothing with a lock-safe form: still one transaction
    ("", "u", 'sa.Index("ix_t_a", t.c.a)', False),  # the concurrent build makes the step run statement by statement
    ("", "t", "", True),  # t.c copied (kept data) under the lock the added column took on t
    ("keep_data = false\n", "t", "", False),  # nothing copied: dropping t.c takes a moment under the held lock
    ("keep_data = false\n", "u", "", True),  # t's lock waited for while u's is held
], ids=["plain", "safe", "safe_with_safe_form", "same_table_kept_data", "same_table", "no_kept_data"])
def test_long_transaction_holding_locks(config: str, table: str, extra: str, expected: bool, tmp_path: Path) -> None:
    """SS211: a column added to `table`, then t.c dropped in the same transaction, which holds `table`'s lock
    meanwhile; a single-change migration is no such finding."""
    after = models(extra=extra).replace('sa.Column("c", sa.String(20)), ', '')
    after = after.replace(f'sa.Table("{table}", Base, sa.Column("id", sa.Integer, primary_key=True)',
                          f'sa.Table("{table}", Base, sa.Column("id", sa.Integer, primary_key=True), '
                          'sa.Column("h", sa.Integer)')
    directory = project_with(tmp_path, after, config=config)
    findings = json.loads(cli(directory, "lint", "head", "--json", check=False).stdout)
    held = [finding for finding in findings if finding["code"] == "SS211"]
    assert bool(held) == expected, findings
    if expected:
        assert held[0]["what"].endswith(f"lock on {table} held"), held
    single = catalogue_project(tmp_path / "single", "drop_column", config=config)
    assert "SS211" not in lint_codes(single)


def raw_sql_project(tmp_path: Path, url: str, operations: str) -> Path:
    """Tables t and u at base; migration 0002 holds `operations` (Python source of the list's items)."""
    directory = write_project(tmp_path, url, models(), extra_config=PLAIN)
    cli(directory, "generate", "-m", "base")
    cli(directory, "generate", "--empty", "-m", "raw")
    path = sorted((directory / "migrations").glob("0002_*.py"))[0]
    path.write_text(path.read_text().replace("operations = []", f"operations = [{operations}]"))
    cli(directory, "manifest")
    return directory


#: SQL -> True when it updates or deletes a whole existing table in one statement (SS212)
WHOLE_TABLE = {
    "UPDATE t SET b = 0": True,
    "DELETE FROM t": True,
    "UPDATE t SET c = 'no; where here' -- WHERE": True,
    "UPDATE t SET b = 0 WHERE b IS NULL": False,
    "CREATE TABLE n (id INT); UPDATE n SET id = 1": False,  # a table the same SQL made: nobody else uses it
    "WITH s (v) AS (SELECT 1 WHERE 1 = 1) UPDATE t SET b = 0": True,  # the WHERE is the CTE's
    "WITH s AS (SELECT 1 AS v), r AS (SELECT 2 AS w) DELETE FROM t": True,
    "WITH s AS (SELECT 1 AS v) UPDATE t SET b = 0 WHERE b IS NULL": False,
    "WITH u AS (UPDATE t SET b = 0 RETURNING b) SELECT count(*) FROM u": True,  # a data-modifying CTE
    "WITH u AS (DELETE FROM t WHERE b < 0 RETURNING b) SELECT count(*) FROM u": False,
}


@pytest.mark.parametrize("url", [PG, MYSQL], ids=["postgresql", "mysql"])
@pytest.mark.parametrize("sql", sorted(WHOLE_TABLE))
def test_whole_table_update_or_delete_in_raw_sql(sql: str, url: str, tmp_path: Path) -> None:
    """SS212 (blocking; its fix names Backfill) for an UPDATE/DELETE without WHERE in ExecuteSQL: parsed with pglast
    on PostgreSQL, read simply on MariaDB/MySQL; in safe mode too (raw SQL is run as written)."""
    if url == PG:
        pytest.importorskip("pglast")
    directory = raw_sql_project(tmp_path, url, f"ExecuteSQL({sql!r}, reverse='')")
    findings = json.loads(cli(directory, "lint", "head", "--json", check=False).stdout)
    hits = [f for f in findings if f["code"] == "SS212"]
    assert bool(hits) == WHOLE_TABLE[sql] and all("Backfill" in f["fix"] for f in hits), findings
    if url == MYSQL or not hits:
        return
    config = directory / "schemashift.toml"
    config.write_text(config.read_text().replace(PLAIN, "safe = true\n"))
    assert "SS212" in lint_codes(directory)


def test_whole_table_update_of_a_table_made_earlier_in_the_migration(tmp_path: Path) -> None:
    """Nobody else uses a table the migration created: no SS212 there (the table already there still counts)."""
    pytest.importorskip("pglast")
    create = 'CreateTable(Table("n", columns=(Column("id", Type("integer"), nullable=False),)))'
    directory = raw_sql_project(tmp_path, PG, f"{create}, ExecuteSQL('UPDATE n SET id = 1; DELETE FROM t', "
                                              "reverse='')")
    findings = json.loads(cli(directory, "lint", "head", "--json", check=False).stdout)
    assert [f["code"] for f in findings if f["code"] == "SS212"] == ["SS212"], findings


@pytest.mark.parametrize("config", [PLAIN, "safe = true\n"], ids=["plain", "safe"])
def test_mysql_volatile_default_copies_the_table(config: str, tmp_path: Path) -> None:
    """MariaDB cannot add a column with DEFAULT (uuid()) INSTANT or INPLACE: SS401 for the plain form; safe mode
    adds it in steps around a batched backfill, so no finding there. A constant or now() default: none."""
    directory = write_project(tmp_path, MYSQL, models(), extra_config=config)
    cli(directory, "generate", "-m", "base")
    set_models(directory, models(extra_cols='sa.Column("d", sa.String(36), nullable=False, '
                                            'server_default=sa.text("uuid()")), sa.Column("e", sa.DateTime, '
                                            'nullable=False, server_default=sa.func.now()),'))
    cli(directory, "generate", "-m", "change")
    findings = json.loads(cli(directory, "lint", "head", "--json", check=False).stdout)
    expected = [("SS401", True)] if config == PLAIN else []
    assert [(f["code"], "t.d" in f["what"]) for f in findings if f["code"].startswith("SS4")] == expected, findings
