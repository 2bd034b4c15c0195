"""Configuration loading: files, environments, interpolation, `.env`, models import and `init`."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemashift import config as cfg
from schemashift.errors import ConfigError, ModelsError, mask_secrets


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEMASHIFT_ENV", raising=False)


def write(directory: Path, text: str, name: str = "schemashift.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(directory: Path, text: str, env: str | None = None, name: str = "schemashift.toml") -> str:
    write(directory, text, name)
    with pytest.raises(ConfigError) as info:
        cfg.load_config(cwd=directory).env(env)
    message = str(info.value)
    assert "\n" not in message
    return message


FULL = """
models = "app.models:Base"
default_env = "local"

[env.local]
url = "sqlite:///app.db"

[env.base]
version_table = "vt"
lock_timeout = 5
[env.base.vars]
region = "us"
tier = "gold"

[env.prod]
extends = "base"
url = "${DATABASE_URL}"
schema = "app"
statement_timeout = 30
confirm = true
allow_data_loss = false
keep_data = false
[env.prod.vars]
region = "eu"
"""


# --------------------------------------------------------------------------- finding and parsing


def test_full_file_and_extends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, FULL)
    config = cfg.load_config(cwd=tmp_path)
    assert config.path == (tmp_path / "schemashift.toml").resolve()
    assert config.root == tmp_path.resolve()
    assert config.models == ["app.models:Base"]
    assert config.migrations_dir == tmp_path.resolve() / "migrations"
    assert config.env_names == ["local", "base", "prod"]
    assert config.default_env == "local"

    local = config.env()
    assert local.name == "local"
    assert local.url == f"sqlite:///{tmp_path.resolve() / 'app.db'}"
    assert (local.version_table, local.lock_timeout, local.statement_timeout) == ("schemashift_version", 60.0, None)
    assert (local.confirm, local.allow_data_loss, local.keep_data, local.vars) == (False, False, True, {})

    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw_k1x9@db/app")
    prod = config.env("prod")
    assert prod.url == "postgresql://app:pw_k1x9@db/app"
    assert (prod.schema, prod.version_table, prod.lock_timeout, prod.statement_timeout) == ("app", "vt", 5.0, 30.0)
    assert (prod.confirm, prod.allow_data_loss, prod.keep_data) == (True, False, False)
    assert prod.vars == {"region": "eu", "tier": "gold"}
    assert "pw_k1x9" not in repr(prod)
    assert mask_secrets("failed: pw_k1x9") == "failed: ***"


def test_pyproject_table_and_precedence(tmp_path: Path) -> None:
    write(tmp_path, '[project]\nname = "x"\n[tool.schemashift]\nmodels = ["a:B", "c:D"]\nmigrations = "db/mig"\n',
          "pyproject.toml")
    config = cfg.load_config(cwd=tmp_path)
    assert config.models == ["a:B", "c:D"]
    assert config.migrations_dir == tmp_path.resolve() / "db" / "mig"
    assert config.env_names == []
    assert config.env().url is None
    write(tmp_path, 'models = "own:Base"\n')
    assert cfg.load_config(cwd=tmp_path).models == ["own:Base"]


def test_pyproject_unknown_key_line(tmp_path: Path) -> None:
    text = '[project]\nname = "x"\n\n[tool.schemashift]\nmodels = "a:B"\n[tool.schemashift.env.dev]\nurl = "sqlite://"\nurls = 1\n'
    message = error_of(tmp_path, text, name="pyproject.toml")
    assert "pyproject.toml:8:" in message and "'urls'" in message and "did you mean 'url'" in message


def test_explicit_config_path_resolves_against_its_folder(tmp_path: Path) -> None:
    write(tmp_path / "deploy", '[env.x]\nurl = "sqlite:///data/x.db"\n', "custom.toml")
    config = cfg.load_config("deploy/custom.toml", cwd=tmp_path)
    assert config.root == (tmp_path / "deploy").resolve()
    assert config.migrations_dir == (tmp_path / "deploy" / "migrations").resolve()
    assert config.env().url == f"sqlite:///{(tmp_path / 'deploy').resolve() / 'data' / 'x.db'}"
    with pytest.raises(ConfigError, match="not found"):
        cfg.load_config(tmp_path / "nope.toml")


def test_missing_config(tmp_path: Path) -> None:
    write(tmp_path, '[tool.black]\nline-length = 100\n', "pyproject.toml")
    with pytest.raises(ConfigError) as info:
        cfg.load_config(cwd=tmp_path)
    message = str(info.value)
    assert "schemashift.toml" in message and "[tool.schemashift]" in message and "schemashift init" in message


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, 'models = "a:B"\n[env.local]\nurl = \n')
    assert "schemashift.toml:3:" in message and "invalid TOML" in message


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ('models = "a:B"\nmigration = "m"\n', 2, "did you mean 'migrations'"),
        ('[env.local]\nurl = "sqlite://"\n\n[env.prod]\nlock_timout = 3\n', 5, "did you mean 'lock_timeout'"),
        ('[env]\nlocal = { url = "sqlite://", colour = "red" }\n', 2, "'colour'"),
        ('env.local.url = "sqlite://"\nenv.local.nonsense = 1\n', 2, "'nonsense'"),
    ],
)
def test_unknown_key_with_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    message = error_of(tmp_path, text)
    assert f"schemashift.toml:{line}:" in message and "unknown key" in message and needle in message


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("models = 3\n", 1, "models must be a string or a list"),
        ('[env.a]\nlock_timeout = "soon"\n', 2, "lock_timeout must be a number"),
        ("[env.a]\nlock_timeout = true\n", 2, "lock_timeout must be a number"),
        ("[env.a]\nstatement_timeout = -1\n", 2, "must not be negative"),
        ('[env.a]\nconfirm = "yes"\n', 2, "confirm must be true or false"),
        ("[env.a]\nurl = 5\n", 2, "url must be a string"),
        ("[env.a]\nvars = 5\n", 2, "vars must be a table"),
        ('default_env = "zzz"\n[env.a]\n', 1, "default_env 'zzz' is not an env"),
        ('[env.a]\nextends = "ghost"\n', 2, "extends unknown env 'ghost'"),
        ('env = "x"\n', 1, "env must be a table"),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, line: int, needle: str) -> None:
    message = error_of(tmp_path, text)
    assert f"schemashift.toml:{line}:" in message and needle in message


def test_extends_cycle(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[env.a]\nextends = "b"\n[env.b]\nextends = "c"\n[env.c]\nextends = "a"\n')
    assert "cycle in extends" in message and "a -> b -> c -> a" in message
    assert "self" in error_of(tmp_path, '[env.self]\nextends = "self"\n')


# --------------------------------------------------------------------------- environments and variables


def test_env_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[env.a]\nurl = "sqlite:///a.db"\n[env.b]\nurl = "sqlite:///b.db"\n')
    config = cfg.load_config(cwd=tmp_path)
    with pytest.raises(ConfigError, match="no environment selected among a, b"):
        config.env()
    assert config.env("b").name == "b"
    monkeypatch.setenv("SCHEMASHIFT_ENV", "a")
    assert config.env().name == "a"
    assert config.env("b").name == "b"
    with pytest.raises(ConfigError, match=r"unknown environment 'c' \(known: a, b\)"):
        config.env("c")
    write(tmp_path, 'default_env = "b"\n[env.a]\n[env.b]\n')
    monkeypatch.delenv("SCHEMASHIFT_ENV")
    assert cfg.load_config(cwd=tmp_path).env().name == "b"
    write(tmp_path, "[env.only]\n")
    assert cfg.load_config(cwd=tmp_path).env().name == "only"


def test_interpolation_is_lazy_and_reports_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    var = f"SS_UNSET_{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.delenv(var, raising=False)
    write(tmp_path, f'default_env = "local"\n[env.local]\nurl = "sqlite://"\n[env.prod]\n\nurl = "${{{var}}}"\n')
    config = cfg.load_config(cwd=tmp_path)
    assert config.env("local").url == "sqlite://"
    with pytest.raises(ConfigError) as info:
        config.env("prod")
    assert "schemashift.toml:6:" in str(info.value) and var in str(info.value) and "'prod'" in str(info.value)
    assert config.env("prod", url="sqlite://").url == "sqlite://"
    monkeypatch.setenv(var, "postgresql://h/db")
    assert config.env("prod").url == "postgresql://h/db"


def test_interpolation_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SS_T_HOST", "db.example")
    monkeypatch.setenv("SS_T_EMPTY", "")
    monkeypatch.setenv("SS_T_TIMEOUT", "7.5")
    monkeypatch.delenv("SS_T_NOPE", raising=False)
    write(tmp_path, """
        [env.a]
        url = "postgresql://u@${SS_T_HOST}:${SS_T_NOPE:-5432}/${SS_T_EMPTY:-app}"
        schema = "lit_$${SS_T_HOST}"
        lock_timeout = "${SS_T_TIMEOUT}"
        confirm = "${SS_T_NOPE:-true}"
        [env.a.vars]
        list = ["${SS_T_HOST}", 1]
        nested = { host = "${SS_T_HOST}" }
        """)
    env = cfg.load_config(cwd=tmp_path).env()
    assert env.url == "postgresql://u@db.example:5432/app"
    assert env.schema == "lit_${SS_T_HOST}"
    assert env.lock_timeout == 7.5 and env.confirm is True
    assert env.vars == {"list": ["db.example", 1], "nested": {"host": "db.example"}}


def test_interpolated_value_of_wrong_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SS_T_BAD", "later")
    message = error_of(tmp_path, '[env.a]\n\nlock_timeout = "${SS_T_BAD}"\n')
    assert "schemashift.toml:3:" in message and "'later'" in message


def test_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SS_T_WINS", "process")
    for name in ("SS_T_A", "SS_T_B", "SS_T_C", "SS_T_D", "SS_T_E"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "# comment\n\nSS_T_A=plain value # trailing\nexport SS_T_B='single # kept'\n"
        'SS_T_C="double \\"quoted\\""\nSS_T_WINS=dotenv\nSS_T_E=\n'
    )
    write(tmp_path, """
        [env.a]
        url = "sqlite://"
        [env.a.vars]
        a = "${SS_T_A}"
        b = "${SS_T_B}"
        c = "${SS_T_C}"
        wins = "${SS_T_WINS}"
        e = "${SS_T_E:-fallback}"
        """)
    env = cfg.load_config(cwd=tmp_path).env()
    assert env.vars == {"a": "plain value", "b": "single # kept", "c": 'double "quoted"', "wins": "process",
                        "e": "fallback"}
    (tmp_path / ".env").write_text("OK=1\nthis is not valid\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE"):
        cfg.load_config(cwd=tmp_path).env()


def test_dotenv_selects_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SCHEMASHIFT_ENV=b\n")
    write(tmp_path, "[env.a]\n[env.b]\n")
    assert cfg.load_config(cwd=tmp_path).env().name == "b"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite+pysqlite:///rel/x.db", "sqlite+pysqlite:///{root}/rel/x.db"),
        ("postgresql://h/rel", "postgresql://h/rel"),
    ],
)
def test_sqlite_paths(tmp_path: Path, url: str, expected: str) -> None:
    write(tmp_path, f'[env.a]\nurl = "{url}"\n')
    assert cfg.load_config(cwd=tmp_path).env().url == expected.format(root=tmp_path.resolve())


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:pw_abc123@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:pw@with@host/db", "postgresql://user:***@host/db"),
        ("mysql+pymysql://root@host/db", "mysql+pymysql://root@host/db"),
        ("not a url at all", "not a url at all"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert cfg.mask_url(url) == masked


def test_mask_url_remembers_percent_decoded_password() -> None:
    cfg.mask_url("postgresql://u:pw%40dec_77@h/db")
    assert mask_secrets("x pw@dec_77 y") == "x *** y"


# --------------------------------------------------------------------------- models


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path, f"ssmodels_{uuid.uuid4().hex[:8]}"


MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, registry

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "users"
    id = sa.Column(sa.Integer, primary_key=True)

metadata = sa.MetaData()
sa.Table("t", metadata, sa.Column("id", sa.Integer))
reg = registry()
not_models = 42
"""


def test_load_models_kinds(project: tuple[Path, str]) -> None:
    root, module = project
    write(root, MODELS, f"{module}.py")
    write(root, f'models = ["{module}:Base", "{module}:metadata", "{module}:reg", "{module}:Base"]\n')
    metadatas = cfg.load_models(cfg.load_config(cwd=root))
    assert len(metadatas) == 3 and all(isinstance(m, sa.MetaData) for m in metadatas)
    assert list(metadatas[0].tables) == ["users"] and list(metadatas[1].tables) == ["t"]
    assert sys.path[0] == str(root.resolve())


@pytest.mark.parametrize(
    ("source", "attr", "needle"),
    [
        ("def broken(:\n", "Base", "SyntaxError"),
        ("import ss_no_such_module_zz\n", "Base", "ss_no_such_module_zz"),
        ("x = 1\n", "Base", "has no attribute 'Base'"),
        ("x = 1\n", "x", "not a declarative base, a registry or a MetaData"),
        ("raise RuntimeError('boom in models')\n", "Base", "RuntimeError: boom in models"),
    ],
)
def test_load_models_errors(project: tuple[Path, str], source: str, attr: str, needle: str) -> None:
    root, module = project
    write(root, source, f"{module}.py")
    write(root, f'models = "{module}:{attr}"\n')
    with pytest.raises(ModelsError) as info:
        cfg.load_models(cfg.load_config(cwd=root))
    assert needle in str(info.value) and "\n" not in str(info.value)
    if "attribute" not in needle:
        assert f"{module}:{attr}" in str(info.value)


def test_load_models_needs_models(tmp_path: Path) -> None:
    write(tmp_path, "[env.a]\n")
    with pytest.raises(ModelsError, match="no models configured"):
        cfg.load_models(cfg.load_config(cwd=tmp_path))
    write(tmp_path, 'models = "no_colon"\n')
    with pytest.raises(ModelsError, match="package.module:Base"):
        cfg.load_models(cfg.load_config(cwd=tmp_path))


# --------------------------------------------------------------------------- init


def test_write_initial_config(tmp_path: Path) -> None:
    path = cfg.write_initial_config(tmp_path, "app.models:Base", 'postgresql://u:pw_init9@h/d"b')
    assert path == tmp_path / "schemashift.toml"
    assert (tmp_path / "migrations" / ".keep").is_file()
    config = cfg.load_config(cwd=tmp_path)
    assert config.models == ["app.models:Base"]
    assert config.env().url == 'postgresql://u:pw_init9@h/d"b'
    with pytest.raises(ConfigError, match="already exists"):
        cfg.write_initial_config(tmp_path, None, None)


def test_write_initial_config_defaults_and_pyproject(tmp_path: Path) -> None:
    cfg.write_initial_config(tmp_path / "a", None, None)
    config = cfg.load_config(cwd=tmp_path / "a")
    assert config.models == [] and config.env().url.startswith("sqlite:///")
    write(tmp_path / "b", '[tool.schemashift]\nmodels = "x:Y"\n', "pyproject.toml")
    with pytest.raises(ConfigError, match=r"\[tool.schemashift\]"):
        cfg.write_initial_config(tmp_path / "b", None, None)
