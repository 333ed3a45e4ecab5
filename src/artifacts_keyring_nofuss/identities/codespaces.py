"""GitHub Codespaces: the ado-codespaces-auth extension's `~/ado-auth-helper get-access-token`
prints an Entra token of the user signed in to VS Code, for Azure DevOps."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path

from artifacts_keyring_nofuss import local
from artifacts_keyring_nofuss import log as _log
from artifacts_keyring_nofuss.errors import SourceError
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable
from artifacts_keyring_nofuss.identities.given import checked
from artifacts_keyring_nofuss.tokens import Token

HELPER_NAME = "ado-auth-helper"


def helper_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """`~/ado-auth-helper` when it is an executable regular file of this user's that others
    may not write (what they wrote there would run as us)."""
    home = local.home(environ)
    if home is None:
        return None
    path = home / HELPER_NAME
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
        return None
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        _log.debug("codespaces: ignoring %s: owned by another user", path)
        return None
    # Not the group's write bit: a umask of 002 with a group of one's own (many distributions
    # set users up so) makes `chmod +x` give it.
    if os.name != "nt" and stat.S_IMODE(info.st_mode) & 0o002:
        _log.debug("codespaces: ignoring %s: anyone can write it", path)
        return None
    return path


_NOT_HERE = f"no ~/{HELPER_NAME} (not a Codespace with ado-codespaces-auth)"


class CodespacesSource:
    def prepare(self, request: TokenRequest) -> Prepared | Unavailable:
        # Who signed in is known only from the token; its session is looked up after it.
        if helper_path(request.settings.env) is None:
            return Unavailable(_NOT_HERE)
        return Prepared()

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        helper = helper_path(request.settings.env)
        if helper is None:
            return Unavailable(_NOT_HERE)
        timeout = min(request.settings.az_timeout, max(0.5, request.deadline.remaining()))
        _log.debug("codespaces: running %s get-access-token", helper)
        try:
            done = local.run_program([str(helper), "get-access-token"], timeout)
        except subprocess.TimeoutExpired:
            raise SourceError(
                f"~/{HELPER_NAME} did not answer in {timeout:.0f} s", "reload the Codespace window"
            ) from None
        except local.TooMuchOutput as exc:
            raise SourceError(
                f"~/{HELPER_NAME} printed {exc}, not a token", "reload the Codespace window"
            ) from None
        except OSError as exc:
            raise SourceError(
                f"cannot run ~/{HELPER_NAME}: {exc.strerror}", "reload the Codespace window"
            ) from None
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            said = _log.printable(lines[0][:200]) if lines else ""
            raise SourceError(
                f"~/{HELPER_NAME} failed ({said or f'exit {done.returncode}'})",
                "sign in to Azure DevOps in the Codespace's ADO extension",
            )
        lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
        secret = checked(lines[-1] if lines else "", f"~/{HELPER_NAME}'s answer")
        return Token.from_secret(secret, "codespaces")
