"""Where a token may go: pure checks on what a feed's anonymous answer points to.

A discovery answer comes from the network, so a DNS hijack or a rogue proxy could write it.
Nothing it names is trusted until it passes these allowlists.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LOGIN_HOSTS = frozenset({"login.microsoftonline.com", "login.windows.net", "login.microsoft.com"})
DEFAULT_AUTHORITY = "https://login.microsoftonline.com/organizations"

# Hosts of the session-token service. The `vssps.*` hosts take the organisation in the path; the
# subdomain form names it as the leftmost label (or `app`, the organisation-less front door).
_TOKEN_PATH_HOSTS = frozenset({"vssps.dev.azure.com", "vssps.codedev.ms", "vssps.vsts.me"})
_TOKEN_SUBDOMAIN_SUFFIXES = (".vssps.visualstudio.com", ".vssps.codedev.ms", ".vssps.vsts.me")

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ORG = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_NULL_TENANT = "00000000-0000-0000-0000-000000000000"


class UntrustedEndpoint(ValueError):
    """A URL that must not receive a token, or a tenant that must not reach a command line."""


def is_guid(value: str) -> bool:
    return bool(_GUID.fullmatch(value))


def is_null_tenant(value: str) -> bool:
    return value.strip().lower() == _NULL_TENANT


def valid_tenant(value: object) -> bool:
    """A tenant id (GUID) or a verified domain name, nothing that could be an option or path."""
    if not isinstance(value, str) or not 1 <= len(value) <= 253:
        return False
    if _GUID.fullmatch(value):
        return not is_null_tenant(value)
    labels = value.split(".")
    return (
        len(labels) >= 2
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and (not labels[-1].isdigit())
    )


def _clean_https(url: object, what: str) -> tuple[str, list[str]]:
    """Host and path segments of a plain https URL on the default port, or UntrustedEndpoint."""
    if not isinstance(url, str) or not url or len(url) > 512:
        raise UntrustedEndpoint(f"{what} is missing or too long")
    if any(ch.isspace() or not ch.isprintable() or ch in "\\%" for ch in url) or not url.isascii():
        raise UntrustedEndpoint(f"{what} {url!r} has characters a plain URL does not")
    if "?" in url or "#" in url:
        raise UntrustedEndpoint(f"{what} {url!r} has a query or fragment")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UntrustedEndpoint(f"{what} {url!r} is not a valid URL") from exc
    if parts.scheme != "https":
        raise UntrustedEndpoint(f"{what} {url!r} is not https")
    if "@" in parts.netloc:
        raise UntrustedEndpoint(f"{what} {url!r} carries userinfo")
    if port not in (None, 443):
        raise UntrustedEndpoint(f"{what} {url!r} uses a non-default port")
    host = parts.hostname or ""
    if host != parts.netloc.lower().removesuffix(":443"):
        raise UntrustedEndpoint(f"{what} {url!r} has an unusual host part")
    segments = parts.path.split("/")[1:] if parts.path else []
    if segments and segments[-1] == "":
        segments.pop()
    if any(s in ("", ".", "..") for s in segments):
        raise UntrustedEndpoint(f"{what} {url!r} has an unusual path")
    return host, segments


def login_authority(uri: object) -> tuple[str, str | None]:
    """(authority URL, tenant or None) from a Bearer challenge's `authorization_uri`."""
    host, segments = _clean_https(uri, "authorization_uri")
    if host not in LOGIN_HOSTS:
        raise UntrustedEndpoint(f"authorization_uri host {host!r} is not a Microsoft Entra host")
    if len(segments) > 1:
        raise UntrustedEndpoint(f"authorization_uri {uri!r} has more than a tenant in its path")
    if not segments:
        return f"https://{host}/organizations", None
    tenant = segments[0].lower()
    if tenant in ("organizations", "common"):
        return f"https://{host}/{tenant}", None
    if not valid_tenant(tenant):
        raise UntrustedEndpoint(f"authorization_uri names an invalid tenant {segments[0]!r}")
    return f"https://{host}/{tenant}", tenant


def authorization_endpoint(uri: object, org: str) -> str:
    """The validated session-token service URL for `org`, ending in '/'."""
    host, segments = _clean_https(uri, "X-VSS-AuthorizationEndpoint")
    org = org.lower()
    if host in _TOKEN_PATH_HOSTS:
        if len(segments) > 1:
            raise UntrustedEndpoint(f"authorization endpoint {uri!r} has a deep path")
        if segments and segments[0].lower() != org:
            raise UntrustedEndpoint(
                f"authorization endpoint {uri!r} belongs to another organisation than {org!r}"
            )
        return f"https://{host}/" + (f"{org}/" if segments else "")
    suffix = next((s for s in _TOKEN_SUBDOMAIN_SUFFIXES if host.endswith(s)), None)
    if suffix is None:
        raise UntrustedEndpoint(f"authorization endpoint host {host!r} is not an Azure DevOps host")
    label = host[: -len(suffix)]
    if label not in (org, "app") or not _DOMAIN_LABEL.fullmatch(label):
        raise UntrustedEndpoint(
            f"authorization endpoint {uri!r} belongs to another organisation than {org!r}"
        )
    if segments:
        raise UntrustedEndpoint(f"authorization endpoint {uri!r} has a path")
    return f"https://{host}/"


def default_authorization_endpoint(feed_host: str, org: str) -> str:
    """Where the exchange lives when a feed does not say: derived from our own allowlist."""
    if not _ORG.fullmatch(org):
        raise UntrustedEndpoint(f"organisation name {org!r} is unusual")
    hostname = feed_host.split(":", maxsplit=1)[0]
    for pkgs, vssps in (
        ("pkgs.dev.azure.com", "vssps.dev.azure.com"),
        ("pkgs.codedev.ms", "vssps.codedev.ms"),
        ("pkgs.vsts.me", "vssps.vsts.me"),
    ):
        if hostname == pkgs:
            return f"https://{vssps}/{org}/"
    if not _DOMAIN_LABEL.fullmatch(org):
        raise UntrustedEndpoint(f"organisation name {org!r} cannot be a host name")
    return f"https://{org}.vssps.visualstudio.com/"


def is_token_url(url: str) -> bool:
    """May a request carrying a bearer token go to this URL? The last check before sending."""
    try:
        host, _ = _clean_https(url.split("?", 1)[0], "token URL")
    except UntrustedEndpoint:
        return False
    if host in _TOKEN_PATH_HOSTS:
        return True
    return any(
        host.endswith(s) and _DOMAIN_LABEL.fullmatch(host[: -len(s)])
        for s in (_TOKEN_SUBDOMAIN_SUFFIXES)
    )


# GitHub Actions' OIDC token service: the job's request token may only go here.
_GITHUB_OIDC_SUFFIX = ".actions.githubusercontent.com"


def is_github_oidc_url(url: str) -> bool:
    """May the Actions request token go to this URL (ACTIONS_ID_TOKEN_REQUEST_URL)?"""
    try:
        host, _ = _clean_https(url.split("?", 1)[0], "ACTIONS_ID_TOKEN_REQUEST_URL")
    except UntrustedEndpoint:
        return False
    label = host[: -len(_GITHUB_OIDC_SUFFIX)]
    return host.endswith(_GITHUB_OIDC_SUFFIX) and bool(_DOMAIN_LABEL.fullmatch(label))


def authority_host(value: str | None) -> str | None:
    """AZURE_AUTHORITY_HOST as azure-identity reads it, if it is an Entra login host; a federated
    assertion must not be sent anywhere else. None when unset; UntrustedEndpoint when wrong."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    url = text if "://" in text else "https://" + text
    host, segments = _clean_https(url, "AZURE_AUTHORITY_HOST")
    if host not in LOGIN_HOSTS or segments:
        raise UntrustedEndpoint(
            f"AZURE_AUTHORITY_HOST {text!r} is not a Microsoft Entra login host "
            f"({', '.join(sorted(LOGIN_HOSTS))})"
        )
    return f"https://{host}"
