"""The exceptions charrnn raises for problems a person can fix.

Every message says what went wrong and, where it can, what to do about it. The CLI
prints ``str(error)`` as one line on stderr and exits with ``exit_code``; anything
that is not a ``CharRNNError`` is a bug and keeps its traceback.
"""

from __future__ import annotations


class CharRNNError(Exception):
    """Base class: a problem with the user's input, files or settings."""

    exit_code = 1


class ConfigError(CharRNNError):
    """A setting is out of range or settings contradict each other."""


class CorpusError(CharRNNError):
    """The corpus cannot be read, decoded or split."""


class VocabError(CharRNNError):
    """Text holds characters outside the vocabulary."""


class CheckpointError(CharRNNError):
    """A checkpoint is missing, damaged, unsafe, or incompatible."""


class RunDirError(CharRNNError):
    """A run directory cannot be used (exists already, is locked, is not a run)."""


class TrainingInterrupted(CharRNNError):
    """Training stopped on request (Ctrl-C) after saving its state.

    The message is built from its parts, so a caller that knows a better way to
    continue (``compare``) says so with :meth:`continue_with` rather than by editing text.
    """

    exit_code = 130

    def __init__(self, step: int, saved: str, how_to_continue: str, signum: int = 2) -> None:
        self.step, self.saved, self.how_to_continue = step, saved, how_to_continue
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention: 130 for Ctrl-C, 143 for TERM
        what = "interrupted" if signum == 2 else f"stopped by signal {_signal_name(signum)}"
        super().__init__(f"{what} at step {step}; saved {saved} ({how_to_continue})")

    def continue_with(self, how: str) -> TrainingInterrupted:
        """The same interruption with other advice on how to continue."""
        return TrainingInterrupted(self.step, self.saved, how, self.signum)


class StopSignal(KeyboardInterrupt):
    """SIGTERM, SIGHUP or SIGQUIT outside training: raised in the main thread so the
    command unwinds through every ``finally`` as it does for Ctrl-C (a half-written
    temporary file is removed), then exits ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by signal {_signal_name(signum)}")


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class TrainingDiverged(CharRNNError):
    """The loss became non-finite and training cannot go on."""
