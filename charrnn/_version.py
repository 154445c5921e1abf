"""The installed package's version (a module of its own, so any module may import it
without running the package's ``__init__``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("charrnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
