"""GitHub Codespaces: the ado-codespaces-auth extension's `~/ado-auth-helper get-access-token`
prints an Entra token of the user signed in to VS Code, for Azure DevOps."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from artifacts_keyring_nofuss import config
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.given import checked
from artifacts_keyring_nofuss.tokens import Token

HELPER_NAME = "ado-auth-helper"


def helper_path() -> Path | None:
    """`~/ado-auth-helper` when it is an executable regular file of this user's."""
    try:
        path = Path.home() / HELPER_NAME
        info = path.stat()
    except (OSError, RuntimeError):
        return None
    if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
        return None
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        _log.debug("codespaces: ignoring %s: owned by another user", path)
        return None
    return path


class CodespacesSource:
    name = "codespaces"
    needs_discovery = True

    def cache_identity(self) -> str | None:
        return None  # known only from the token; the session is looked up after it

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        helper = helper_path()
        if helper is None:
            return Unavailable(f"no ~/{HELPER_NAME} (not a Codespace with ado-codespaces-auth)")
        timeout = min(config.az_timeout(), max(0.5, request.deadline.remaining()))
        _log.debug("codespaces: running %s get-access-token", helper)
        try:
            done = subprocess.run(
                [str(helper), "get-access-token"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SourceError(
                f"~/{HELPER_NAME} did not answer in {timeout:.0f} s; reload the Codespace window"
            ) from None
        except OSError as exc:
            raise SourceError(f"cannot run ~/{HELPER_NAME}: {exc.strerror}") from None
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            said = _log.printable(lines[0][:200]) if lines else ""
            raise SourceError(
                f"~/{HELPER_NAME} failed ({said or f'exit {done.returncode}'}); sign in to Azure "
                "DevOps in the Codespace's ADO extension"
            )
        lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
        secret = checked(lines[-1] if lines else "", f"~/{HELPER_NAME}'s answer")
        return Token.from_secret(secret, self.name)
