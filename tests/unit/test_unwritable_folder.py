"""A migrations folder that cannot be written is an input error (exit 2, one line naming the path), never exit 3.

Tests run as root here, where permissions do not stop a write: the refusal is injected where the writer creates
its temporary file, as the operating system would raise it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from schemashift import cli

MODELS = "import sqlalchemy as sa\nBase = sa.MetaData()\nt = sa.Table('t', Base, sa.Column('id', sa.Integer, primary_key=True))\n"


@pytest.mark.parametrize("error", [errno.EACCES, errno.EROFS, errno.ENOENT])
def test_generate_into_an_unwritable_folder(tmp_path: Path, error: int, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "models_unwritable.py").write_text(MODELS)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "schemashift.toml").write_text('models = "models_unwritable:Base"\nmigrations = "migrations"\n'
                                               '[env.a]\nurl = "sqlite:///a.db"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = str(tmp_path / "migrations")

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(error, os.strerror(error), folder)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code = cli.main(["generate", "-m", "t"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and os.strerror(error) in err and folder in err and "internal error" not in err, err
    assert not list((tmp_path / "migrations").glob("0*.py"))
