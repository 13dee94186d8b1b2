"""sitrep: label sentences of war and conflict reporting, served over HTTP."""

__version__ = "0.1.0"
