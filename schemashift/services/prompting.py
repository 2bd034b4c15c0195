"""How commands ask the person running them: a `Prompter` passed in, never ``input()`` here.

Three questions exist: the confirmation of a migration on an environment with
``confirm = true``, the choice between continuing and undoing a partly applied
migration (`repair` without an action), and the differ's questions about renames
and one-off values for existing rows (`generate`). A command receives a
`Prompter`; the command line passes one that asks at a terminal
(`schemashift.cli.TerminalPrompter`), the Python API passes `NO_PROMPTS`, which
cannot ask: a question that needs an answer then stops the command with a message
naming the option that answers it (``--yes``, ``repair continue|undo``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from schemashift.errors import SchemashiftError

if TYPE_CHECKING:
    from schemashift.autodetect.differ import Questioner


class Prompter(Protocol):
    """Asks questions of the person running a command."""

    def can_ask(self) -> bool:
        """True when someone can answer now (at a terminal)."""

    def ask(self, question: str) -> str:
        """The answer to `question`, stripped and lower-cased; end of input is no answer (``""``)."""

    def questioner(self) -> Questioner | None:
        """What answers the differ's questions (renames, values for existing rows); None: nobody."""


class NoPrompts:
    """The prompter of the Python API: nobody to ask."""

    def can_ask(self) -> bool:
        """Never."""
        return False

    def ask(self, question: str) -> str:
        """No answer."""
        return ""

    def questioner(self) -> Questioner | None:
        """None: renames are not guessed and values for existing rows are not asked for."""
        return None


NO_PROMPTS = NoPrompts()


def confirm(prompter: Prompter, environment: str, url: str, what: str) -> None:
    """Ask to confirm `what` on `environment` (at `url`); raise unless the answer is yes."""
    if not prompter.can_ask():
        raise SchemashiftError(f"environment {environment!r} requires confirmation: pass --yes to {what}")
    answer = prompter.ask(f"{what.capitalize()} on environment {environment!r} ({url})? [y/N] ")
    if answer not in ("y", "yes"):
        raise SchemashiftError("aborted: not confirmed")


def repair_action(prompter: Prompter) -> str:
    """``continue`` or ``undo`` as answered (an unknown answer is returned as given, for the caller to refuse)."""
    if not prompter.can_ask():
        raise SchemashiftError(
            "choose how to repair: `schemashift repair continue` (run the rest once the cause is fixed) "
            "or `schemashift repair undo` (revert the statements that ran)"
        )
    answer = prompter.ask("Continue from the failed statement, or undo what ran? [continue/undo] ")
    return {"c": "continue", "u": "undo"}.get(answer, answer)


__all__ = ["NO_PROMPTS", "NoPrompts", "Prompter", "confirm", "repair_action"]
