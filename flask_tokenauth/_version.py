"""The version of the package, alone in a module so that any module may
read it without importing the package (and its views) first."""

__version__ = "0.1.0.dev0"
