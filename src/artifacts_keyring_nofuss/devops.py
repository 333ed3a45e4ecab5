"""Azure DevOps as Entra ID knows it: the resource, the scopes we ask for, and the kinds of token
a lookup can hand out. Constants only: every layer may import this module.
"""

from __future__ import annotations

RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
# Everything the signed-in identity may do in Azure DevOps: what client-credential flows and
# the Azure Artifacts first-party client must ask for.
DEFAULT_SCOPE = RESOURCE + "/.default"

# What a lookup hands out, or keeps. Only SESSION tokens are ever written to disk.
GIVEN = "given"  # somebody minted it and handed it over: a PAT, a pipeline token, any token
USER = "entra-user"  # a user's Entra token (exchanged for a session token)
APPLICATION = "application"  # an application's Entra token (used as it is)
SESSION = "session"  # an Azure DevOps session token, scoped to the URL's needs
KINDS = (GIVEN, USER, APPLICATION, SESSION)
