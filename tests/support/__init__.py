"""Builders shared by several test modules (tests/ is on sys.path: pytest puts the
rootdir conftest's folder there)."""
