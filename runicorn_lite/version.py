"""The package's version, in a leaf module: the server reports it without importing the SDK that
the package's face brings in."""

from __future__ import annotations

__version__ = "0.1.0"
