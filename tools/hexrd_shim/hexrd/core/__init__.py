"""Shim package: see ``tools/hexrd_shim/hexrd/__init__.py``."""
