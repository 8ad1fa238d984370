"""Errors a user can act on: the CLI prints them as one line, never a traceback."""


class MMRagError(Exception):
    """Base for errors caused by input, configuration or environment, not by a bug."""


class ConfigError(MMRagError):
    """A configured name, option or value is not valid."""


class MissingDependency(MMRagError):
    """An optional dependency is not installed; the message names the extra to install."""


class IngestError(MMRagError):
    """A file could not be read or parsed; carries the path and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreError(MMRagError):
    """The store is missing, locked, corrupt, or was built with other settings."""


class ModelError(MMRagError):
    """A model or model endpoint failed: unreachable, timed out, or answered garbage."""


class ModelUnavailable(ConfigError):
    """A configured model cannot be loaded here: a missing file or part, a wrong checksum,
    a runtime that failed to load it. A pipeline then falls back to retrieval only."""
