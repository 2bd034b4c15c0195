"""Project configuration: `schemashift.toml` (or `[tool.schemashift]`), environments, `.env` and models.

`load_config` reads and checks the file's structure eagerly (unknown keys, wrong
types, `extends` cycles); `Config.env` resolves one environment lazily, expanding
`${VAR}` / `${VAR:-default}` only for the environment actually used.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemashift.dialects.registry import database as database_of
from schemashift.errors import ConfigError, ModelsError, mask_secrets, remember_secret
from schemashift.support.gcpause import paused

if TYPE_CHECKING:
    import sqlalchemy as sa

CONFIG_NAME = "schemashift.toml"
PYPROJECT_NAME = "pyproject.toml"
DOTENV_NAME = ".env"
ENV_VAR = "SCHEMASHIFT_ENV"

TOP_KEYS = ("models", "migrations", "default_env", "env", "exclude", "include_object")
STRING_KEYS = ("url", "schema", "version_table", "extends", "pooler", "tenants_query", "tenants_from")
NUMBER_KEYS = ("lock_timeout", "statement_timeout", "connect_timeout", "read_timeout", "lock_lease", "ddl_lock_timeout",
               "ddl_retries", "ddl_backoff", "safe_rewrite_rows")
BOOL_KEYS = ("confirm", "allow_data_loss", "keep_data", "safe", "step_by_step")
ENV_KEYS = STRING_KEYS + NUMBER_KEYS + BOOL_KEYS + ("vars", "exclude", "tenants")
#: The ways to name an environment's tenants (at most one per environment; see `schemashift.services.fleet`).
TENANT_KEYS = ("tenants", "tenants_query", "tenants_from")

#: Environment settings used when the file does not give them.
ENV_DEFAULTS: dict[str, Any] = {
    "url": None,
    "schema": None,
    "version_table": "schemashift_version",
    "lock_timeout": 60.0,
    "statement_timeout": None,
    "connect_timeout": 10.0,
    "read_timeout": None,
    "confirm": False,
    "allow_data_loss": False,
    "keep_data": True,
    "safe": None,  # None: the database's default (`Dialect.safe_by_default`)
    "ddl_lock_timeout": 2.0,  # safe mode: how long one DDL statement may wait for its table lock
    "ddl_retries": 5,  # safe mode: attempts after a lock timeout
    "ddl_backoff": 0.5,  # safe mode: wait before the first retry (doubled each time)
    "step_by_step": False,  # True: an empty database runs every migration (no fresh build)
    "safe_rewrite_rows": 10000,  # safe mode: rows above which a table-rewriting change is refused
    "exclude": [],
    "pooler": None,
    "lock_lease": 20.0,
    "tenants": [],
    "tenants_query": None,
    "tenants_from": None,
}
#: Values of `pooler`: a transaction-mode pooler needs the lease lock (see `schemashift.runtime.locks`).
POOLERS = ("transaction", "session", "none")

_VAR = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class TenantConfig:
    """One tenant of a fleet: a PostgreSQL schema of the environment's database (`url` None) or its own database."""

    name: str
    url: str | None = None


@dataclass
class EnvConfig:
    """One resolved environment: variables expanded, relative SQLite paths made absolute."""

    name: str
    url: str | None
    schema: str | None
    version_table: str
    lock_timeout: float
    statement_timeout: float | None
    confirm: bool
    allow_data_loss: bool
    keep_data: bool
    vars: dict[str, Any]
    connect_timeout: float = 10.0
    read_timeout: float | None = None
    exclude: list[str] = field(default_factory=list)
    pooler: str | None = None  #: "transaction", "session", "none"; None: detected
    lock_lease: float = 20.0  #: seconds a lease lock outlives its last heartbeat
    tenants: list[TenantConfig] = field(default_factory=list)  #: the fleet, when listed in the file
    tenants_query: str | None = None  #: SQL whose first column names the tenant schemas
    tenants_from: str | None = None  #: ``module:function`` returning the tenants
    #: Lock-safe execution (see `schemashift.planning.safe`); None: the database's default.
    safe: bool | None = None
    ddl_lock_timeout: float = 2.0
    ddl_retries: float = 5
    ddl_backoff: float = 0.5
    #: Run every migration on an empty database too (no fresh build, see `schemashift.planning.fresh`).
    step_by_step: bool = False
    #: Safe mode refuses a change that rewrites or copies a table holding more rows than this.
    safe_rewrite_rows: float = 10000

    def __repr__(self) -> str:
        return mask_secrets(
            f"EnvConfig(name={self.name!r}, url={mask_url(self.url) if self.url else None!r}, schema={self.schema!r})"
        )


@dataclass
class Config:
    """A project's configuration; `env()` picks and resolves one environment."""

    path: Path | None
    root: Path
    models: list[str]
    migrations_dir: Path
    default_env: str | None
    env_names: list[str]
    exclude: list[str] = field(default_factory=list)
    include_object: str | None = None
    _envs: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _source: _Source | None = field(default=None, init=False, repr=False, compare=False)

    def environ(self) -> dict[str, str]:
        """The process environment over the values of the `.env` file next to the config."""
        merged = read_dotenv(self.root / DOTENV_NAME)
        merged.update(os.environ)
        return merged

    def select_env_name(self, name: str | None = None) -> str | None:
        """The environment to use: `name`, else $SCHEMASHIFT_ENV, else `default_env`, else the only one."""
        chosen = name or self.environ().get(ENV_VAR) or self.default_env
        if chosen:
            if chosen not in self.env_names:
                known = ", ".join(self.env_names) or "none are defined"
                raise ConfigError(f"{self._where()}unknown environment {chosen!r} (known: {known})")
            return chosen
        if len(self.env_names) == 1:
            return self.env_names[0]
        if not self.env_names:
            return None
        raise ConfigError(
            f"{self._where()}no environment selected among {', '.join(self.env_names)}",
            hint="pass --env NAME, set SCHEMASHIFT_ENV or set default_env",
        )

    def env(self, name: str | None = None, *, url: str | None = None) -> EnvConfig:
        """Resolve environment `name` (see `select_env_name`); `url` replaces the configured URL unexpanded."""
        chosen = self.select_env_name(name)
        if chosen is None:
            settings, origins = dict(ENV_DEFAULTS), dict[str, str]()
            settings["vars"] = {}
        else:
            settings, origins = self._merged(chosen)
        if url is not None:
            settings["url"] = None
        resolver = _Resolver(self, chosen or "default", origins, self.environ())
        resolved = resolver.resolve(settings)
        if url is not None:
            resolved["url"] = url
        if resolved["url"]:
            resolved["url"] = _absolute_sqlite_url(resolved["url"], self.root)
            mask_url(resolved["url"])
        return EnvConfig(name=chosen or "default", **resolved)

    def _merged(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """Settings of `name` with its `extends` chain applied, and which env each key came from."""
        chain: list[str] = []
        current: str | None = name
        while current is not None:
            chain.append(current)
            current = self._envs[current].get("extends")
        settings: dict[str, Any] = dict(ENV_DEFAULTS)
        settings["vars"] = {}
        origins: dict[str, str] = {}
        for env_name in reversed(chain):
            for key, value in self._envs[env_name].items():
                if key == "extends":
                    continue
                if key == "vars":
                    settings["vars"].update(value)
                    origins.update({f"vars.{k}": env_name for k in value})
                else:
                    settings[key] = value
                    origins[key] = env_name
        return settings, origins

    def _where(self, *key_path: str) -> str:
        if self._source is None:
            return ""
        return self._source.where(*key_path)


@dataclass
class _Source:
    """The config file's text, to report errors with a line number."""

    path: Path
    text: str
    prefix: tuple[str, ...]

    def where(self, *key_path: str) -> str:
        """`file:line: ` for `key_path` (under the config table), or `file: ` when not found."""
        line = find_key_line(self.text, self.prefix + key_path) if key_path else None
        return f"{_display(self.path)}:{line}: " if line else f"{_display(self.path)}: "


class _Resolver:
    """Expands `${VAR}` in one environment's settings and converts interpolated numbers and booleans."""

    def __init__(self, config: Config, env_name: str, origins: dict[str, str], environ: Mapping[str, str]) -> None:
        self.config = config
        self.env_name = env_name
        self.origins = origins
        self.environ = environ

    def resolve(self, settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ENV_DEFAULTS:
            value = self.expand(settings[key], key)
            if key in NUMBER_KEYS and isinstance(value, str):
                value = self._number(value, key)
            elif key in BOOL_KEYS and isinstance(value, str):
                value = self._bool(value, key)
            elif key in NUMBER_KEYS and value is not None:
                value = float(value)
            out[key] = value
        if out["url"] == "":
            out["url"] = None
        if out["pooler"] == "":
            out["pooler"] = None
        if out["pooler"] is not None and out["pooler"] not in POOLERS:
            choices = ", ".join(POOLERS)
            raise ConfigError(f"{self._where('pooler')}pooler must be one of {choices}, got {out['pooler']!r}")
        if out["lock_lease"] is not None and out["lock_lease"] < 1:
            raise ConfigError(f"{self._where('lock_lease')}lock_lease must be at least 1 second")
        out["vars"] = {k: self.expand(v, f"vars.{k}") for k, v in settings["vars"].items()}
        out["tenants"] = self._tenants(out["tenants"])
        given = [key for key in TENANT_KEYS if out[key]]
        if len(given) > 1:
            raise ConfigError(f"{self._where(given[1])}set only one of {', '.join(given)} for env {self.env_name!r}")
        return out

    def _tenants(self, items: list[Any]) -> list[TenantConfig]:
        """The `tenants` list (checked when the file was read) as `TenantConfig`s, relative SQLite paths resolved."""
        tenants: list[TenantConfig] = []
        for item in items:
            if isinstance(item, str):
                tenants.append(TenantConfig(item))
            else:
                url = item.get("url") or None
                tenants.append(TenantConfig(item["name"], _absolute_sqlite_url(url, self.config.root) if url else None))
        return tenants

    def expand(self, value: Any, key: str) -> Any:
        """`value` with variables expanded (recursively in lists and tables)."""
        if isinstance(value, str):
            return _VAR.sub(lambda m: self._lookup(m, key), value)
        if isinstance(value, list):
            return [self.expand(item, key) for item in value]
        if isinstance(value, dict):
            return {k: self.expand(v, key) for k, v in value.items()}
        return value

    def _lookup(self, match: re.Match[str], key: str) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group("name"), match.group("default")
        value = self.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ConfigError(
                    f"{self._where(key)}environment variable {name} is not set "
                    f"(used by {key} of env {self.env_name!r})",
                    hint=f"set it, or write ${{{name}:-default}}",
                )
            return default
        return value

    def _number(self, text: str, key: str) -> float | None:
        if text.strip() == "" and key == "statement_timeout":
            return None
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{self._where(key)}{key} must be a number of seconds, got {text!r}") from None
        if number < 0:
            raise ConfigError(f"{self._where(key)}{key} must not be negative")
        return number

    def _bool(self, text: str, key: str) -> bool:
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{self._where(key)}{key} must be true or false, got {text!r}")

    def _where(self, key: str) -> str:
        origin = self.origins.get(key)
        if origin is None:
            return self.config._where()
        return self.config._where("env", origin, *key.split(".", 1))


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | Config | None = None, *, cwd: Path | None = None) -> Config:
    """Read `path`, else `schemashift.toml` or `[tool.schemashift]` of `pyproject.toml` in `cwd`.

    A `Config` is returned as it is: the command line reads the file once and hands the result on.
    """
    if isinstance(path, Config):
        return path
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    if path is not None:
        file = Path(path)
        file = file if file.is_absolute() else cwd / file
        if not file.is_file():
            raise ConfigError(f"config file {_display(file)} not found")
        text = _read(file)
        data = _parse(file, text)
        if file.name == PYPROJECT_NAME:
            table = data.get("tool", {}).get("schemashift")
            if not isinstance(table, dict):
                raise ConfigError(f"{_display(file)}: has no [tool.schemashift] table")
            return _build(file, text, table, ("tool", "schemashift"))
        return _build(file, text, data, ())
    file = cwd / CONFIG_NAME
    if file.is_file():
        text = _read(file)
        return _build(file, text, _parse(file, text), ())
    file = cwd / PYPROJECT_NAME
    if file.is_file():
        text = _read(file)
        table = _parse(file, text).get("tool", {}).get("schemashift")
        if isinstance(table, dict):
            return _build(file, text, table, ("tool", "schemashift"))
    raise ConfigError(
        f"no configuration found in {cwd}: looked for {CONFIG_NAME} and [tool.schemashift] in {PYPROJECT_NAME}",
        hint="run `schemashift init` to create one, or pass --config PATH",
    )


def default_config(cwd: Path | None = None) -> Config:
    """A configuration without a file (no models, no environments), for `--url`-only use."""
    root = Path(cwd).resolve() if cwd is not None else Path.cwd().resolve()
    return Config(None, root, [], root / "migrations", None, [])


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {_display(file)}: {exc}") from None


def _parse(file: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"at line (\d+)", str(exc))
        where = f"{_display(file)}:{line.group(1)}" if line else _display(file)
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None


def _build(file: Path, text: str, table: dict[str, Any], prefix: tuple[str, ...]) -> Config:
    source = _Source(file.resolve(), text, prefix)
    _check_keys(source, table, TOP_KEYS, ())
    root = source.path.parent
    models = table.get("models", [])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{source.where('models')}models must be a string or a list of strings")
    migrations = table.get("migrations", "migrations")
    if not isinstance(migrations, str) or not migrations:
        raise ConfigError(f"{source.where('migrations')}migrations must be a folder name (a string)")
    envs = table.get("env", {})
    if not isinstance(envs, dict):
        raise ConfigError(f"{source.where('env')}env must be a table of environments ([env.NAME])")
    for name, env in envs.items():
        _check_env(source, name, env, envs)
    _check_cycles(source, envs)
    default_env = table.get("default_env")
    if default_env is not None and not isinstance(default_env, str):
        raise ConfigError(f"{source.where('default_env')}default_env must be a string")
    if default_env is not None and default_env not in envs:
        known = ", ".join(envs) or "none are defined"
        raise ConfigError(f"{source.where('default_env')}default_env {default_env!r} is not an env (known: {known})")
    exclude = _check_patterns(source, table.get("exclude", []), ("exclude",))
    include_object = table.get("include_object")
    if include_object is not None and (not isinstance(include_object, str) or ":" not in include_object):
        raise ConfigError(f"{source.where('include_object')}include_object must look like 'package.module:function'")
    config = Config(
        path=source.path,
        root=root,
        models=list(models),
        migrations_dir=(root / migrations).resolve(),
        default_env=default_env,
        env_names=list(envs),
        exclude=exclude,
        include_object=include_object,
    )
    config._envs = envs
    config._source = source
    return config


def _check_keys(source: _Source, table: dict[str, Any], allowed: tuple[str, ...], at: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            section = f"[{'.'.join(source.prefix + at)}]" if source.prefix + at else "the top level"
            raise ConfigError(
                f"{source.where(*at, key)}unknown key {key!r} in {section}",
                hint=f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}",
            )


def _check_env(source: _Source, name: str, env: Any, envs: dict[str, Any]) -> None:
    at = ("env", name)
    if not isinstance(env, dict):
        raise ConfigError(f"{source.where(*at)}env.{name} must be a table ([env.{name}])")
    _check_keys(source, env, ENV_KEYS, at)
    for key, value in env.items():
        interpolated = isinstance(value, str) and "${" in value
        if key in STRING_KEYS and not isinstance(value, str):
            raise ConfigError(f"{source.where(*at, key)}{key} must be a string, got {_toml_type(value)}")
        if key in NUMBER_KEYS and not interpolated:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source.where(*at, key)}{key} must be a number of seconds, got {_toml_type(value)}")
            if value < 0:
                raise ConfigError(f"{source.where(*at, key)}{key} must not be negative")
        if key in BOOL_KEYS and not interpolated and not isinstance(value, bool):
            raise ConfigError(f"{source.where(*at, key)}{key} must be true or false, got {_toml_type(value)}")
        if key == "exclude":
            _check_patterns(source, value, (*at, key))
        if key == "vars" and not isinstance(value, dict):
            raise ConfigError(f"{source.where(*at, key)}vars must be a table ([env.{name}.vars])")
        if key == "tenants":
            _check_tenants(source, value, (*at, key))
        if key == "tenants_from" and not interpolated and not _is_target(value):
            raise ConfigError(f"{source.where(*at, key)}tenants_from must look like 'package.module:function'")
        if key == "tenants_query" and not value.strip():
            raise ConfigError(f"{source.where(*at, key)}tenants_query must be an SQL query (a non-empty string)")
    given = [key for key in TENANT_KEYS if key in env]
    if len(given) > 1:
        raise ConfigError(f"{source.where(*at, given[1])}set only one of {', '.join(given)} for env {name!r}")
    parent = env.get("extends")
    if parent is not None and parent not in envs:
        raise ConfigError(
            f"{source.where(*at, 'extends')}env {name!r} extends unknown env {parent!r} (known: {', '.join(envs)})"
        )


def _check_tenants(source: _Source, value: Any, at: tuple[str, ...]) -> None:
    """`tenants`: schema names, or inline tables ``{ name = "acme", url = "..." }``; names unique."""
    shape = 'a list of schema names or of tables like { name = "acme", url = "..." }'
    if not isinstance(value, list):
        raise ConfigError(f"{source.where(*at)}tenants must be {shape}")
    names: list[str] = []
    for item in value:
        name = item
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"name", "url"})
            if unknown:
                raise ConfigError(f"{source.where(*at)}unknown key {unknown[0]!r} in a tenant (known keys: name, url)")
            if not isinstance(item.get("url", ""), str):
                raise ConfigError(f"{source.where(*at)}a tenant's url must be a string")
            name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{source.where(*at)}tenants must be {shape}; every tenant needs a non-empty name")
        if name in names:
            raise ConfigError(f"{source.where(*at)}tenant {name!r} is listed twice")
        names.append(name)


def _is_target(spec: str) -> bool:
    """True for ``module:attribute``."""
    module, sep, attr = spec.partition(":")
    return bool(sep and module.strip() and attr.strip())


def _check_patterns(source: _Source, value: Any, at: tuple[str, ...]) -> list[str]:
    """`exclude`: a list of table/sequence names or glob patterns."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{source.where(*at)}exclude must be a list of names or patterns, e.g. [\"legacy_*\"]")
    return list(value)


def _check_cycles(source: _Source, envs: dict[str, dict[str, Any]]) -> None:
    for start in envs:
        seen = [start]
        current = envs[start].get("extends")
        while current is not None:
            if current in seen:
                cycle = " -> ".join([*seen[seen.index(current):], current])
                raise ConfigError(f"{source.where('env', current, 'extends')}cycle in extends: {cycle}")
            seen.append(current)
            current = envs[current].get("extends")


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _display(path: Path) -> str:
    """`path` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- line lookup

_HEADER = re.compile(r"^\s*\[(?!\[)\s*(?P<name>[^\]]+?)\s*\]\s*(?:#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*(?P<name>[^\]]+?)\s*\]\]")
_KEY_PIECE = r"(?:[A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')"
_KEY_LINE = re.compile(rf"^\s*(?P<key>{_KEY_PIECE}(?:\s*\.\s*{_KEY_PIECE})*)\s*=")
_KEY_PART = re.compile(r"\s*(?:\"(?P<dq>[^\"]*)\"|'(?P<sq>[^']*)'|(?P<bare>[A-Za-z0-9_\-]+))\s*(?:\.|$)")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(m.group("dq") if m.group("dq") is not None else m.group("sq") if m.group("sq") is not None
                 else m.group("bare") for m in _KEY_PART.finditer(text))


def _inline_key(line: str, key: str) -> bool:
    """Whether `key = …` appears inside an inline table on `line`."""
    return re.search(r"[{,]\s*[\"']?" + re.escape(key) + r"[\"']?\s*=", line) is not None


def find_key_line(text: str, key_path: tuple[str, ...]) -> int | None:
    """1-based line where the dotted `key_path` is defined in TOML `text` (a table header or a key)."""
    table: tuple[str, ...] = ()
    fallback: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if _ARRAY_HEADER.match(line):
            table = ("\0",)
            continue
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group("name"))
            if table == key_path:
                return number
            continue
        key = _KEY_LINE.match(line)
        if not key:
            continue
        full = table + _split_key(key.group("key"))
        if full[: len(key_path)] == key_path:
            return number
        if key_path[: len(full)] == full and _inline_key(line, key_path[-1]):
            return number
        if fallback is None and table == key_path[: len(table)] and full[-1] == key_path[-1]:
            fallback = number
    return fallback


# --------------------------------------------------------------------------- .env, URLs


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE pairs of a `.env` file (comments, quotes and `export ` allowed); {} when absent."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(_read(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", key):
            raise ConfigError(f"{_display(path)}:{number}: expected KEY=VALUE")
        values[key] = _dotenv_value(value.strip(), path, number)
    return values


def _dotenv_value(value: str, path: Path, number: int) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        if end < 0:
            raise ConfigError(f"{_display(path)}:{number}: unterminated quoted value")
        inner = value[1:end]
        if quote == '"':
            inner = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), inner)
        return inner
    return re.split(r"\s+#", value, maxsplit=1)[0].rstrip()


#: Database paths that need no quoting in a URL.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./~+-]*")


def _absolute_sqlite_url(url: str, root: Path) -> str:
    """`url` with a relative SQLite database path made absolute against `root`."""
    entry = database_of(url.partition(":")[0].partition("+")[0])
    if entry is None or not entry.file_paths:
        return url
    scheme, sep, database = url.partition(":///")
    if sep and scheme in entry.plain_file_drivers and _PLAIN_PATH.fullmatch(database):
        # the common case, without importing SQLAlchemy (the fast `status` must not)
        if not database or Path(database).is_absolute():
            return url
        absolute = str(root / database)
        if _PLAIN_PATH.fullmatch(absolute):
            return f"{scheme}:///{absolute}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:") or Path(path).is_absolute():
        return url
    return parsed.set(database=str(root / path)).render_as_string(hide_password=False)


def mask_url(url: str) -> str:
    """`url` with its password replaced by ``***`` (remembered for later masking); safe on any string."""
    if not isinstance(url, str):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme: not a URL SQLAlchemy parses, but ``user:password@host`` still hides a password
        scheme, rest = "", url
    authority = rest.split("?", 1)[0]
    at = authority.rfind("@")  # the last one: an unencoded password may hold '@' itself
    userinfo = authority[:at] if at >= 0 else ""
    if ":" in userinfo and "/" not in userinfo.split(":", 1)[0]:
        user, password = userinfo.split(":", 1)
        remember_secret(password)
        if "%" in password:
            from urllib.parse import unquote

            remember_secret(unquote(password))
        if password:
            url = f"{scheme}{sep}{user}:***{rest[at:]}"
    return mask_secrets(url)


# --------------------------------------------------------------------------- models


def load_models(config: Config) -> list[sa.MetaData]:
    """Import each `module:attr` of `config.models` (declarative base, registry or MetaData)."""
    import sqlalchemy as sa

    if not config.models:
        where = _display(config.path) if config.path else "the configuration"
        raise ModelsError(f"no models configured in {where}", hint='set models = "package.module:Base"')
    root = str(config.root)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    importlib.invalidate_caches()
    result: list[sa.MetaData] = []
    for spec in config.models:
        forget_foreign_modules(spec.partition(":")[0].strip(), config.root)
        with paused():  # building thousands of model classes, not garbage
            target = _import_target(spec)
        metadata = target if isinstance(target, sa.MetaData) else getattr(target, "metadata", None)
        if not isinstance(metadata, sa.MetaData):
            raise ModelsError(
                f"models {spec!r} is {type(target).__name__}, not a declarative base, a registry or a MetaData"
            )
        if not any(metadata is seen for seen in result):
            result.append(metadata)
    return result


def forget_foreign_modules(module_name: str, root: Path) -> None:
    """Drop `module_name` and its packages from `sys.modules` where they were imported from outside `root`
    while `root` has a module of that name: another project in this process imported its own ``app.models``."""
    parts = module_name.split(".")
    for depth in range(len(parts), 0, -1):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        local = root.joinpath(*parts[:depth])
        if module is None or origin is None:
            continue
        if not (local.with_suffix(".py").is_file() or (local / "__init__.py").is_file()):
            continue
        if not Path(origin).resolve().is_relative_to(root.resolve()):
            for loaded in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
                del sys.modules[loaded]


def _import_target(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ModelsError(f"models {spec!r} must look like 'package.module:Base'")
    try:
        target: Any = importlib.import_module(module_name.strip())
    except Exception as exc:  # noqa: BLE001 - broad on purpose: any import failure is the user's
        raise ModelsError(f"cannot import models {spec!r}: {_one_line(exc)}") from None
    for part in attr.strip().split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ModelsError(f"cannot import models {spec!r}: {module_name} has no attribute {attr!r}") from None
    return target


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# --------------------------------------------------------------------------- init


def write_initial_config(directory: Path, models: str | None, url: str | None) -> Path:
    """Write `schemashift.toml` and an empty migrations folder in `directory`; never overwrites."""
    directory = Path(directory)
    file = directory / CONFIG_NAME
    if file.exists():
        raise ConfigError(f"{_display(file)} already exists; not overwriting it")
    pyproject = directory / PYPROJECT_NAME
    if pyproject.is_file():
        try:
            has_table = "schemashift" in tomllib.loads(_read(pyproject)).get("tool", {})
        except tomllib.TOMLDecodeError:
            has_table = False
        if has_table:
            raise ConfigError(f"{_display(pyproject)} already has a [tool.schemashift] table; not adding {CONFIG_NAME}")
    if url:
        mask_url(url)
    models_line = f"models = {_toml_str(models)}" if models else '# models = "myapp.models:Base"   # set this'
    text = (
        "# schemashift configuration\n"
        f"{models_line}\n"
        'migrations = "migrations"\n'
        'default_env = "local"\n'
        "\n"
        "[env.local]\n"
        f"url = {_toml_str(url or 'sqlite:///app.db')}\n"
        "\n"
        "# [env.prod]\n"
        '# extends = "local"           # start from env.local\'s settings; lines here override them\n'
        '# url = "${DATABASE_URL}"     # ${VAR} comes from the process environment or a .env file here\n'
        "# confirm = true              # upgrade/downgrade ask first (or need --yes)\n"
    )
    directory.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    migrations = directory / "migrations"
    migrations.mkdir(exist_ok=True)
    (migrations / ".keep").touch()
    return file


def _toml_str(value: str) -> str:
    """`value` as a TOML basic string (JSON escaping is valid TOML)."""
    return json.dumps(value, ensure_ascii=False)
