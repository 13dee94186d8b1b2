"""Bundled model artifacts, installed with the package as `sitrep_models`."""
