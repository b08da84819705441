"""The version of prefsift (also in pyproject.toml)."""

__version__ = "0.1.0"
