"""Exceptions with the exit code the CLI maps them to, and credential masking.

Every error a user can cause is a `SchemashiftError`: the CLI prints its message
on one line (URLs masked) and exits with `exit_code`, never with a traceback.
"""

from __future__ import annotations

import re


class SchemashiftError(Exception):
    """Base of all expected errors; `exit_code` 2 means usage or input error."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(mask_secrets(message))
        self.hint = mask_secrets(hint) if hint else None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(SchemashiftError):
    """The configuration is missing or wrong."""


class ModelsError(SchemashiftError):
    """The models could not be imported or are not usable."""


class MigrationError(SchemashiftError):
    """A migration file or the migration history is wrong."""


class RevisionError(SchemashiftError):
    """An unknown or ambiguous revision was asked for."""


class IrreversibleError(SchemashiftError):
    """An operation cannot be undone."""


class ConnectionFailed(SchemashiftError):
    """The database could not be reached."""


class LockTimeout(SchemashiftError):
    """Another process held the migration lock for too long."""


class DatabaseStateError(SchemashiftError):
    """The version table disagrees with the migrations (partly applied, tampered…)."""


class UnmanagedDatabase(DatabaseStateError):
    """The database already holds tables the migrations would create, but no schemashift history."""


class ExecutionError(SchemashiftError):
    """A statement failed while migrating."""


class DifferencesFound(SchemashiftError):
    """`check`/`diff` found differences: exit code 1."""

    exit_code = 1


# the secret runs to the last '@' of the URL: an unencoded password may hold '@' itself
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^\s'\"]*)(?P<tail>@)")
_KEY_VALUE = re.compile(r"(?i)(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?P<secret>'[^']*'|\"[^\"]*\"|[^\s&;,)]+)")

_known_secrets: set[str] = set()


def remember_secret(secret: str | None) -> None:
    """Mask `secret` wherever it appears in later messages (a URL's password)."""
    if secret and len(secret) >= 3:
        _known_secrets.add(secret)


def mask_secrets(text: str) -> str:
    """Replace passwords in URLs, ``password=…`` pairs and remembered secrets with ``***``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***" + m.group("tail"), text)
    text = _KEY_VALUE.sub(lambda m: m.group("head") + "***", text)
    for secret in _known_secrets:
        text = text.replace(secret, "***")
    return text
