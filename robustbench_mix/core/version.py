"""The package's version, recorded in every result row (``package_version``)."""

__version__ = "0.4.0"
