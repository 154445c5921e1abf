"""charrnn's version, defined here once: the build reads it from this file
(``[tool.hatch.version]`` in pyproject.toml), so the package metadata, ``charrnn
--version``, checkpoints and exports all say the same, and CHANGELOG.md's top entry
names it (tests/test_version.py). A module of its own, so any module may import it
without running the package's ``__init__``.
"""

__version__ = "0.4.0"
