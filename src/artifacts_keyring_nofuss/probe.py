"""Is a cached session token still accepted by its feed? One authenticated HEAD of the feed's
index, before the token is handed out again, so that a revoked token or a changed policy costs
one cold lookup instead of a failing install. It goes through the one network layer (trust,
proxies, no netrc), on the standard library: `requests` would cost more than the whole warm
lookup is allowed to take.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from . import http
from . import log as _log
from .deadline import Deadline
from .feeds import Feed

# The check is worth a few seconds at most: when it cannot tell, the cached token is handed
# out as it is (the install that follows will say whether the feed takes it).
BUDGET = 5.0


def refused(status: int) -> bool:
    return status in (401, 203) or 300 <= status < 400


def answer(
    feed: Feed,
    token: str,
    env: Mapping[str, str],
    deadline: Deadline,
    declared_host_ok: bool = False,
) -> int | None:
    """The feed index's status for this token, or None when the feed gave no answer in time.

    A host the user declared (not a Microsoft one) is asked only with a token handed over for
    it (`declared_host_ok`): never with one minted from this machine's sign-in.
    """
    if feed.extra and not declared_host_ok:
        return None
    basic = base64.b64encode(f"VssSessionToken:{token}".encode()).decode("ascii")
    status = http.head(
        feed.index_url,
        {"Authorization": f"Basic {basic}", "X-TFS-FedAuthRedirect": "Suppress"},
        env,
        deadline,
        BUDGET,
    )
    if status is not None:
        _log.debug("probe: %s answered %s for the token", feed.host, status)
    return status


def still_accepted(
    feed: Feed, token: str, env: Mapping[str, str], deadline: Deadline
) -> bool | None:
    """True: the feed took it. False: refused (401, or a sign-in page). None: could not tell."""
    status = answer(feed, token, env, deadline)
    if status is None:
        return None
    return not refused(status)
