"""asyncbench: SQLAlchemy's sync path against its async path, measured honestly."""

__version__ = "0.1.0"
APP_NAME = "asyncbench"
