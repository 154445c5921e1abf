"""How chat messages become the text a character model continues, and where it stops.

A character model has no chat format of its own, so the server uses a plain one. The
default writes each message as its role on a line, the text, and a blank line::

    System:
    You are a poet.

    User:
    Write about the sea.

    Assistant:

and the model continues after ``Assistant:`` and a newline; the reply ends at the
first blank line (``"\\n\\n"``, what ends a turn), or at ``max_tokens``. The layout
suits text written as speeches (a play: ``NAME:`` on a line, the speech, a blank
line) and reads plainly for any other.

``--chat-template`` replaces the one format every message is written with, a string
with the fields ``{Role}`` (``System``, ``User``, ``Assistant``; a ``developer``
message counts as ``System``), ``{role}`` (as sent) and ``{content}`` (once). The
reply's opening is that format for an assistant up to ``{content}``, and the reply
stops at what the format puts after ``{content}``: ``"{Role}: {content}\\n"`` gives
``User: hi`` lines, a reply that starts after ``Assistant: `` and stops at the end
of its line. On the command line ``\\n`` and ``\\t`` are a newline and a tab; a path
to a file reads the format from the file, verbatim.

A run trained on items (``--docs``) answers with one item instead: the last user
message is the item's beginning (it may be empty), and the reply is the whole item.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import ConfigError

DEFAULT_FORMAT = "{Role}:\n{content}\n\n"
_FIELDS = {"role", "Role", "content"}
_ROLE_NAMES = {"system": "System", "developer": "System", "user": "User"}


@dataclass(frozen=True)
class ChatTemplate:
    """The format each message is written with (see the module's docstring)."""

    format: str = DEFAULT_FORMAT

    def __post_init__(self) -> None:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(self.format) if name]
        except ValueError as exc:
            raise ConfigError(f"--chat-template is not a format string: {exc}") from None
        unknown = sorted(set(fields) - _FIELDS)
        if unknown:
            raise ConfigError(
                f"--chat-template has the field {{{unknown[0]}}}; it may use {{Role}}, "
                "{role} and {content}"
            )
        if fields.count("content") != 1:
            raise ConfigError("--chat-template must hold {content} exactly once")
        if not self.stop:
            raise ConfigError(
                "--chat-template must end a message with something after {content} (a "
                "newline, say): that is where a reply stops"
            )

    @classmethod
    def parse(cls, spec: str) -> ChatTemplate:
        """A template from ``--chat-template``: a file's text if ``spec`` names a file,
        else ``spec`` itself with ``\\n``, ``\\t`` and ``\\\\`` read as escapes."""
        path = Path(spec)
        if len(spec) < 4096 and path.is_file():
            try:
                return cls(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the chat template {spec}: {exc}") from None
        escapes = {"n": "\n", "t": "\t", "\\": "\\"}
        return cls(re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[0]), spec))

    def _parts(self) -> tuple[str, str]:
        marker = "\x00content\x00"
        filled = self.format.format(role="assistant", Role="Assistant", content=marker)
        before, _, after = filled.partition(marker)
        return before, after

    @property
    def opening(self) -> str:
        """What the reply starts after (``"Assistant:\\n"`` by default)."""
        return self._parts()[0]

    @property
    def stop(self) -> str:
        """Where the reply ends (``"\\n\\n"`` by default)."""
        return self._parts()[1]

    def render(self, messages: Sequence[tuple[str, str]]) -> str:
        """The text the model continues: every ``(role, text)`` message written out,
        then the reply's opening."""
        written = [
            self.format.format(role=role, Role=_ROLE_NAMES.get(role, "Assistant"), content=text)
            for role, text in messages
        ]
        return "".join(written) + self.opening
