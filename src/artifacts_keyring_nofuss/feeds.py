"""What a keyring service string means: is it an Azure Artifacts feed, and of which organisation.

Pure and cheap: it runs for every service keyring is asked about, most of which are not ours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

READ_SCOPE = "vso.packaging"
WRITE_SCOPE = "vso.packaging_write"

# Hosts whose organisation is the first path segment when used bare, or the leftmost label when
# a subdomain is prepended (`{org}.pkgs.visualstudio.com`).
_PATH_ORG_HOSTS = ("pkgs.dev.azure.com", "pkgs.codedev.ms", "pkgs.vsts.me")
_SUBDOMAIN_ORG_HOSTS = ("pkgs.visualstudio.com",)
FEED_HOSTS = _PATH_ORG_HOSTS + _SUBDOMAIN_ORG_HOSTS

# The official provider's "treat these hosts as Azure DevOps" setting, in all its spellings:
# `;`-separated, a leading dot meaning any subdomain. Feeds on them keep the org in the path.
EXTRA_HOSTS_VARS = (
    "ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS",
    "NUGET_CREDENTIALPROVIDER_VSTS_HOSTS",
    "NUGET_CREDENTIALPROVIDER_HOSTS",
)

_MAX_SERVICE_LENGTH = 2048
# Org, project and feed names as Azure DevOps allows them, after percent-decoding; anything
# stranger is not a URL we will spend a network round trip on.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ ()~-]{0,99}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class Feed(NamedTuple):
    """An Azure Artifacts URL, reduced to what authentication needs."""

    url: str  # https URL without userinfo, query or fragment: what discovery probes
    host: str  # lower-case host, with ":port" when not the default
    org: str  # lower-case organisation name
    project: str | None
    feed: str  # feed name (or GUID in download URLs), without the view
    view: str | None
    write: bool  # an upload URL: needs the publish scope
    org_in_path: bool = True  # pkgs.dev.azure.com/{org}/..., not {org}.pkgs.visualstudio.com
    # On a host the user declared (ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS): not a Microsoft
    # host, so it is never sent anything minted from this machine's Entra identity.
    extra: bool = False

    @property
    def scope(self) -> str:
        return WRITE_SCOPE if self.write else READ_SCOPE

    @property
    def index_url(self) -> str:
        """The feed's simple index: what the warm path asks to prove a token is still good."""
        parts = [quote(self.org)] if self.org_in_path else []
        if self.project:
            parts.append(quote(self.project))
        parts += ["_packaging", quote(self.feed + (f"@{self.view}" if self.view else ""), "@")]
        return f"https://{self.host}/" + "/".join(parts) + "/pypi/simple/"

    @property
    def label(self) -> str:
        parts = [self.org, self.project, self.feed + (f"@{self.view}" if self.view else "")]
        return "/".join(p for p in parts if p)


def match_host(hostname: str, suffixes: tuple[str, ...] = FEED_HOSTS) -> str | None:
    """The suffix that `hostname` is, or ends with on a dot boundary."""
    for suffix in suffixes:
        if hostname == suffix or hostname.endswith("." + suffix):
            return suffix
    return None


def extra_hosts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Hosts the user declared as Azure DevOps: exact names, or `.suffix` for any subdomain.

    Entries that are not plain DNS names are dropped: a pattern must never widen to `*`.
    """
    env = os.environ if environ is None else environ
    found: list[str] = []
    for name in EXTRA_HOSTS_VARS:
        for raw in env.get(name, "").split(";"):
            if not raw.isascii():  # lower() folds homoglyphs (the Kelvin sign) into ASCII
                continue
            entry = raw.strip().lower().rstrip(".")
            bare = entry[1:] if entry.startswith(".") else entry
            labels = bare.split(".")
            if len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels):
                found.append(entry)
    return tuple(found)


def _match_extra(hostname: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern.startswith("."):
            if hostname.endswith(pattern):
                return True
        elif hostname == pattern:
            return True
    return False


def parse_feed_url(service: object, hosts: tuple[str, ...] | None = None) -> Feed | None:
    """The feed that a keyring service string names, or None when it is not one of ours.

    `hosts`: the user's extra Azure DevOps hosts (default: from the environment).
    """
    if not isinstance(service, str) or not service or len(service) > _MAX_SERVICE_LENGTH:
        return None
    # Backslashes: urllib and urllib3 disagree on where the host ends (`evil.com\@pkgs...`).
    # Non-ASCII: str.lower() folds homoglyphs such as the Kelvin sign into ASCII letters.
    if not service.isascii() or "\\" in service:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in service):
        return None
    text = service if "://" in service else "https://" + service
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "https" or not hostname:
        return None
    hostname = hostname.rstrip(".")
    # Every label a plain DNS label: HTTP clients decode escapes such as `%2d` in a host, we
    # would not, and the host we vouch for must be the host the client connects to.
    if not all(_LABEL.fullmatch(label) for label in hostname.split(".")):
        return None
    suffix = match_host(hostname)
    extra = suffix is None and _match_extra(hostname, extra_hosts() if hosts is None else hosts)
    if suffix is None and not extra:
        return None
    host = hostname if port in (None, 443) else f"{hostname}:{port}"

    segments = [unquote(s) for s in parts.path.split("/") if s]
    if extra:
        return _extra_host_feed(host, parts.path, segments)
    if suffix in _SUBDOMAIN_ORG_HOSTS:
        org_label = hostname[: -len(suffix) - 1] if hostname != suffix else ""
        if not org_label or "." in org_label or not _LABEL.fullmatch(org_label):
            return None
        org, org_in_path = org_label, False
    else:
        if not segments:
            return None  # a bare host carries no organisation
        org, segments, org_in_path = segments[0], segments[1:], True
    return _feed_from_path(host, parts.path, org, segments, org_in_path)


def _feed_from_path(
    host: str, raw_path: str, org: str, segments: list[str], org_in_path: bool
) -> Feed | None:
    lowered = [s.lower() for s in segments]
    if "_packaging" not in lowered:
        return None
    at = lowered.index("_packaging")
    if at > 1 or at + 1 >= len(segments):
        return None
    project = segments[0] if at == 1 else None
    feed, _, view = segments[at + 1].partition("@")
    protocol_parts = lowered[at + 2 :]
    if any(not _NAME.fullmatch(n) for n in (org, feed, *(x for x in (project, view) if x))):
        return None
    write = len(protocol_parts) >= 2 and protocol_parts[1] == "upload"
    return Feed(
        url=f"https://{host}{raw_path}",
        host=host,
        org=org.lower(),
        project=project,
        feed=feed,
        view=view or None,
        write=write,
        org_in_path=org_in_path,
    )


def _extra_host_feed(host: str, raw_path: str, segments: list[str]) -> Feed | None:
    """A feed on a declared host: `{org}[/{project}]/_packaging/...`, or on Azure DevOps Server
    `{virtual dir}/{collection}/{project}/_packaging/...`, where the path before the project
    stands for the organisation."""
    lowered = [s.lower() for s in segments]
    if "_packaging" not in lowered:
        return None
    at = lowered.index("_packaging")
    if not 1 <= at <= 4:
        return None
    if any(not _NAME.fullmatch(s) for s in segments[:at]):
        return None
    if at <= 2:
        found = _feed_from_path(host, raw_path, segments[0], segments[1:], True)
        return None if found is None else found._replace(extra=True)
    org = "/".join(segments[: at - 1])
    found = _feed_from_path(host, raw_path, "x", segments[at - 1 :], True)
    return None if found is None else found._replace(org=org.lower(), extra=True)


def same_feed(endpoint: str, feed: Feed) -> bool:
    """Does a configured endpoint URL name this feed? By feed, not by string, so that uv's
    URL (no trailing slash, a username) and a NuGet or upload URL of the same feed all match;
    an endpoint that is not a feed URL matches as a case-insensitive URL prefix."""
    named = parse_feed_url(endpoint)
    if named is not None:
        return (
            named.host == feed.host
            and named.org == feed.org
            and (named.project or "").lower() == (feed.project or "").lower()
            and named.feed.lower() == feed.feed.lower()
        )
    return prefix_match(endpoint, feed)


def prefix_match(prefix: str, feed: Feed) -> bool:
    """The official provider's URI-prefix rule, applied to the feed's URL without userinfo, and
    stricter: the prefix must name a host and end on a boundary (the end of the URL, or a `/`
    in it or at its own end). A string prefix would hand `https://pkgs.dev.azure.com/contoso`'s
    token to `https://pkgs.dev.azure.com/contosoevil/...`, an organisation anyone can create."""
    wanted = prefix.strip().lower()
    scheme = "https://"
    if not wanted.startswith(scheme) or wanted[len(scheme) :][:1] in ("", "/"):
        return False
    return any(_under(url.lower(), wanted) for url in (feed.url, feed.index_url))


def _under(url: str, prefix: str) -> bool:
    if not url.startswith(prefix):
        return False
    return prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix)] == "/"
