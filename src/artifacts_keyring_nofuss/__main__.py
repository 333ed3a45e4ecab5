"""`python -m artifacts_keyring_nofuss`: the same as `ak-nofuss`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
