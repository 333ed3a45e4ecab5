"""Pure-Python keyring backend for Azure DevOps Artifacts feeds.

keyring imports this package in every process, for every service it is asked about, so
nothing here may import more than the standard library and keyring itself.
"""

from __future__ import annotations

__version__ = "0.1.0"
