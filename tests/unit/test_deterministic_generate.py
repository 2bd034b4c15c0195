"""`generate` writes the same bytes for the same models whatever ``PYTHONHASHSEED`` is.

SQLAlchemy keeps a table's constraints in sets, iterated in a per-process hash
order: seeds 1-6 gave three different files on a real application (order of
foreign keys and CHECKs, and with it MariaDB's ``<table>_ibfk_<n>`` names). Each
seed runs in its own process; only the random revision id and the creation time
differ between runs and are masked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, cli, set_models, write_project

SEEDS = ("1", "2", "3", "4", "5", "6")

RICH = '''
import enum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Status(enum.Enum):
    new = "new"
    done = "done"


class Org(Base):
    __tablename__ = "org"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id", use_alter=True))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("org.id"))
    __table_args__ = (sa.CheckConstraint("length(name) > 1"), sa.CheckConstraint("id > 0"),
                      sa.Index("ix_org_owner_parent", "owner_id", "parent_id"))


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("org.id"))
    manager_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id"))
    mentor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(sa.String(120), index=True)
    status: Mapped[Status] = mapped_column(sa.Enum(Status, name="status_t"))
    age: Mapped[int | None] = mapped_column(sa.CheckConstraint("age >= 0"), sa.CheckConstraint("age < 200"))
    score: Mapped[int | None]
    __table_args__ = (sa.UniqueConstraint("org_id", "email"), sa.UniqueConstraint("org_id", "id"), sa.UniqueConstraint("email", "org_id", "age"),
                      sa.CheckConstraint("score < 100"), sa.CheckConstraint("score > -100"),
                      sa.Index("ix_person_score_age", "score", "age"))


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("org.id"))
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("person.id"))
    deputy_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id"))
    kind: Mapped[str] = mapped_column(sa.Enum("a", "b", "c", name="kind_t", native_enum=False, create_constraint=True))
    budget: Mapped[int] = mapped_column(sa.CheckConstraint("budget >= 0"), sa.CheckConstraint("budget < 1000000"))
    __table_args__ = (sa.ForeignKeyConstraint(["org_id", "lead_id"], ["person.org_id", "person.id"]),
                      sa.UniqueConstraint("org_id", "lead_id"), sa.Index("ix_project_kind", "kind"),
                      sa.Index("ix_project_budget", "budget", unique=True))


class Task(Base):
    __tablename__ = "task"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("project.id"))
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("person.id"))
    reviewer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id"))
    blocked_by: Mapped[int | None] = mapped_column(sa.ForeignKey("task.id"))
    status: Mapped[Status] = mapped_column(sa.Enum(Status, name="status_t"))
    __table_args__ = (sa.CheckConstraint("owner_id <> reviewer_id"), sa.CheckConstraint("id <> blocked_by"),
                      sa.UniqueConstraint("project_id", "owner_id"))


# a cycle of three tables with no use_alter: the differ breaks it
ring_a = sa.Table("ring_a", Base.metadata, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("b_id", sa.ForeignKey("ring_b.id")), sa.Column("c_id", sa.ForeignKey("ring_c.id")))
ring_b = sa.Table("ring_b", Base.metadata, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("c_id", sa.ForeignKey("ring_c.id")), sa.Column("a_id", sa.ForeignKey("ring_a.id")))
ring_c = sa.Table("ring_c", Base.metadata, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("a_id", sa.ForeignKey("ring_a.id")), sa.Column("b_id", sa.ForeignKey("ring_b.id")))
tag_link = sa.Table("tag_link", Base.metadata,
                    sa.Column("task_id", sa.ForeignKey("task.id"), primary_key=True),
                    sa.Column("person_id", sa.ForeignKey("person.id"), primary_key=True),
                    sa.Column("org_id", sa.ForeignKey("org.id")),
                    sa.CheckConstraint("task_id > 0"), sa.CheckConstraint("person_id > 0"))
'''
# the evolution: new keys and checks on existing tables, and a new table in the cycle
RICH_V2 = RICH.replace(
    '    score: Mapped[int | None]\n',
    '    score: Mapped[int | None]\n'
    '    buddy_id: Mapped[int | None] = mapped_column(sa.ForeignKey("person.id"))\n'
    '    home_id: Mapped[int | None] = mapped_column(sa.ForeignKey("org.id"), sa.CheckConstraint("home_id > 0"))\n',
) + '''
ring_d = sa.Table("ring_d", Base.metadata, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("a_id", sa.ForeignKey("ring_a.id")), sa.Column("e_id", sa.ForeignKey("ring_e.id")),
                  sa.CheckConstraint("id > 1"), sa.CheckConstraint("id < 9"))
ring_e = sa.Table("ring_e", Base.metadata, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("d_id", sa.ForeignKey("ring_d.id")), sa.Column("d2_id", sa.ForeignKey("ring_d.id")))
'''

_VARYING = re.compile(r"^(Revision: |revision = |Parent: |parent = |Created: ).*$", re.MULTILINE)


def masked(path: Path) -> str:
    return _VARYING.sub(r"\1…", path.read_text())


@pytest.mark.parametrize("url", ["sqlite:///app.db", "mysql+pymysql://root@127.0.0.1:3306/nowhere"],
                         ids=["sqlite", "mysql-url"])
def test_generate_is_byte_identical_under_every_hash_seed(tmp_path: Path, url: str) -> None:
    files: dict[str, tuple[str, str]] = {}
    for seed in SEEDS:
        directory = write_project(tmp_path / seed, url, RICH)
        cli(directory, "generate", "-m", "rich", env={"PYTHONHASHSEED": seed})
        set_models(directory, RICH_V2)
        cli(directory, "generate", "-m", "more keys", env={"PYTHONHASHSEED": seed})
        first, second = sorted((directory / "migrations").glob("0*.py"))
        files[seed] = (masked(first), masked(second))
    assert "ForeignKey(" in files["1"][0] and "CheckConstraint(" in files["1"][1]
    for seed in SEEDS[1:]:
        assert files[seed] == files["1"], f"PYTHONHASHSEED={seed} wrote another file than PYTHONHASHSEED=1"


_CORPUS = '''
import hashlib, json, sys, types
from datetime import datetime
sys.path.insert(0, sys.argv[1])
from scenarios import SCENARIOS
from scenario_harness import generate_options
from schemashift.autodetect.differ import RenameDecisions, diff
from schemashift.operations.render import render_migration
from schemashift.sqla.from_metadata import from_metadata

def schema(scenario, version):
    module = types.ModuleType(f"sc_{scenario.name}_{version}")
    exec(scenario.source(version), module.__dict__)
    return from_metadata(module.metadata)

digests = {}
for scenario in SCENARIOS:
    options = generate_options(scenario.flags)
    decisions = RenameDecisions(no_rename=True, columns={(t, o): n for t, o, n in options["rename_columns"]},
                                tables={o: n for o, n in options["rename_tables"]})
    v1, v2 = schema(scenario, "v1"), schema(scenario, "v2")
    text = "".join(render_migration("r", None, "m", ops, datetime(2000, 1, 1))
                   for ops in (diff(from_metadata([]), v1), diff(v1, v2, decisions)))
    digests[scenario.name] = hashlib.sha256(text.encode()).hexdigest()
print(json.dumps(digests))
'''


def test_corpus_migrations_do_not_depend_on_the_hash_seed() -> None:
    """Every corpus scenario's two migrations, rendered in processes with different hash seeds."""
    runs = {}
    for seed in SEEDS:
        environ = {**os.environ, "PYTHONHASHSEED": seed}
        command = [sys.executable, "-W", "ignore", "-c", _CORPUS, str(ROOT / "tests")]
        result = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        runs[seed] = json.loads(result.stdout)
    for seed in SEEDS[1:]:
        differing = sorted(name for name, digest in runs[seed].items() if runs["1"].get(name) != digest)
        assert not differing, f"PYTHONHASHSEED={seed} renders these scenarios differently: {differing}"
