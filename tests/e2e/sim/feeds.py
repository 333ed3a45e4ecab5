"""Azure Artifacts feed hosts: pkgs.dev.azure.com, {org}.pkgs.visualstudio.com and the
on-premises server. PEP 503 index, downloads by feed GUID, and the legacy upload API."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass

from . import discovery, multipart, world
from .credentials import (
    ENTRA_APP,
    ENTRA_USER,
    PAT,
    PIPELINE,
    SESSION,
    Identified,
    identify,
    presented,
)
from .httpserver import Request, Response, json_response, not_found, text_response
from .state import PackageFile, SimState, normalize

READ = "read"
WRITE = "write"
READ_SCOPES = frozenset(
    {"vso.packaging", "vso.packaging_write", "vso.packaging_manage", "app_token"}
)
WRITE_SCOPES = frozenset({"vso.packaging_write", "vso.packaging_manage", "app_token"})
ROLE_OPS = {world.READER: {READ}, world.CONTRIBUTOR: {READ, WRITE}}


def is_feed_host(host: str) -> bool:
    return host in (world.FEED_HOST, world.ONPREM_HOST) or (
        host.endswith(".pkgs.visualstudio.com")
        and host != world.SCALE_UNIT_HOST
        and host.count(".") == 3
    )


@dataclass(frozen=True)
class FeedPath:
    org: world.Org
    legacy: bool
    project: str | None
    feed_ref: str
    view: str | None
    rest: list[str]


def parse_path(request: Request) -> FeedPath | world.Org | None:
    """A FeedPath for .../_packaging/...; the bare Org for other paths of a known org; None
    for an unknown org."""
    segs = request.segments()
    host = request.host
    legacy = False
    if host == world.FEED_HOST:
        org_name, segs = (segs[0], segs[1:]) if segs else ("", [])
    elif host == world.ONPREM_HOST:
        if len(segs) < 2 or segs[0].lower() != "tfs":
            return None
        org_name, segs = segs[1], segs[2:]
    else:
        org_name, legacy = host.split(".", 1)[0], True
    org = world.org_named(org_name)
    if org is None or (org.tenant is None) != (host == world.ONPREM_HOST):
        return None
    low = [s.lower() for s in segs]
    if "_packaging" not in low:
        return org
    at = low.index("_packaging")
    if at > 1 or len(segs) < at + 2:
        return org
    feed_ref, _, view = segs[at + 1].partition("@")
    return FeedPath(
        org, legacy, segs[0] if at == 1 else None, feed_ref, view or None, segs[at + 2 :]
    )


def find_feed(path: FeedPath) -> world.Feed | None:
    ref = path.feed_ref.lower()
    for feed in world.FEEDS:
        if feed.org.lower() != path.org.name.lower():
            continue
        if feed.guid == ref:
            return feed
        same_project = (feed.project or "").lower() == (path.project or "").lower()
        if feed.name.lower() == ref and same_project:
            return feed
    return None


def _forbidden(principal: str | None, permission: str) -> Response:
    return json_response(
        403,
        {
            "$id": "1",
            "message": f"User '{principal or ''}' lacks permission to complete this action. "
            f"You need to have '{permission}'.",
            "typeKey": "FeedNeedsPermissionsException",
        },
    )


class FeedHosts:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        parsed = parse_path(request)
        if not isinstance(parsed, FeedPath):
            return not_found()
        op = WRITE if request.method == "POST" else READ
        rest = [s.lower() for s in parsed.rest]
        request.note.kind = request_kind(request.method, rest)
        denied = self._authorize(request, parsed.org, parsed.legacy, op)
        if denied is not None:
            return denied
        feed = find_feed(parsed)
        if feed is None or not rest or rest[0] != "pypi":
            return json_response(404, {"message": f"The feed '{parsed.feed_ref}' doesn't exist."})
        if parsed.view and parsed.view.lower() not in {v.lower() for v in feed.views}:
            return json_response(404, {"message": f"The view '{parsed.view}' doesn't exist."})
        kind = request.note.kind
        if kind == "index" and len(rest) == 2:
            return self._root(feed, parsed.view)
        if kind == "index":
            return self._project(request, feed, parsed, parsed.rest[2])
        if kind == "download":
            return self._download(feed, parsed.rest[2], parsed.rest[3], parsed.rest[4])
        if kind == "upload":
            if parsed.view:
                return json_response(400, {"message": "Packages cannot be published to a view."})
            return self._upload(request, feed)
        return not_found()

    # --- authentication and authorisation ---------------------------------------------------

    def _authorize(
        self, request: Request, org: world.Org, legacy: bool, op: str
    ) -> Response | None:
        with self.state.lock:
            override = self.state.knobs.discovery.get(org.name.lower())
        shown = presented(request)
        if shown.secret is None:
            request.note.kind = "discovery"
            return discovery.unauthorized(org, legacy, override)
        if shown.scheme not in ("basic", "bearer"):
            return discovery.unauthorized(org, legacy, override)
        ident = identify(self.state, shown.secret)
        refusal, allowed = self._decide(ident, org, op)
        if refusal is not None:
            return discovery.unauthorized(org, legacy, override, refusal)
        if not allowed:
            return _forbidden(ident.principal, "AddPackage" if op == WRITE else "ReadPackages")
        return None

    def _decide(self, ident: Identified, org: world.Org, op: str) -> tuple[str | None, bool]:
        """(reason for a 401, or None; whether the operation is allowed)."""
        not_authorized = (
            f"TF400813: The user '{ident.principal or ''}' is not authorized to "
            "access this resource."
        )
        if ident.problem is not None:
            return not_authorized, False
        if ident.kind in (SESSION, PAT, PIPELINE):
            if ident.org is None:
                if ident.tenant != org.tenant or self._global_pats_barred(ident, org):
                    return not_authorized, False
            elif ident.org.lower() != org.name.lower():
                return not_authorized, False
            scopes = WRITE_SCOPES if op == WRITE else READ_SCOPES
            return None, bool(ident.scopes & scopes)
        if ident.kind not in (ENTRA_USER, ENTRA_APP) or org.tenant is None:
            return not_authorized, False
        if ident.tenant != org.tenant or ident.principal is None:
            return not_authorized, False
        if ident.kind == ENTRA_USER:
            with self.state.lock:
                accept = self.state.knobs.accept_user_tokens_on_feeds
                never = (ident.principal, org.name.lower()) in self.state.knobs.never_signed_in
            if not accept:
                return not_authorized, False
            if never:
                return never_signed_in_message(ident.principal, org), False
        role = self.state.role(ident.principal, org.name)
        if role is None:
            return not_authorized, False
        allowed = ROLE_OPS.get(role, set())
        if ident.kind == ENTRA_USER:
            allowed = allowed & delegated_ops(ident)
        return None, op in allowed

    def _global_pats_barred(self, ident: Identified, org: world.Org) -> bool:
        """An organisation that restricts PAT creation takes no global token (one from
        app.vssps) from a user who is not on the policy's allowlist."""
        with self.state.lock:
            restriction = self.state.knobs.pat_restrictions.get(org.name.lower())
        return restriction is not None and (ident.principal or "") not in restriction.allowlist

    # --- index, download, upload ----------------------------------------------------------

    def _files(self, feed: world.Feed, view: str | None) -> list[PackageFile]:
        with self.state.lock:
            return self.state.packages.in_feed(feed.guid, view)

    def _root(self, feed: world.Feed, view: str | None) -> Response:
        projects = sorted({f.project for f in self._files(feed, view)})
        links = "".join(
            f'<a href="{html.escape(p)}/">{html.escape(p)}</a><br/>\n' for p in projects
        )
        page = (
            "<!DOCTYPE html>\n<html><head><title>Simple Index</title></head><body>\n"
            f"{links}</body></html>\n"
        )
        return text_response(200, page, "text/html; charset=utf-8")

    def _project(
        self, request: Request, feed: world.Feed, path: FeedPath, project: str
    ) -> Response:
        name = normalize(project)
        files = [f for f in self._files(feed, path.view) if f.project == name]
        if not files:
            return json_response(404, {"message": f"The package '{project}' doesn't exist."})
        base = request.url.split(request.path, 1)[0]
        if request.host == world.FEED_HOST:
            prefix = f"{base}/{path.org.name}"
        elif request.host == world.ONPREM_HOST:
            prefix = f"{base}/tfs/{path.org.name}"
        else:
            prefix = base
        links = "".join(
            f'<a href="{prefix}/_packaging/{feed.guid}/pypi/download/{f.project}/'
            f'{html.escape(f.version)}/{html.escape(f.filename)}#sha256={f.sha256}">'
            f"{html.escape(f.filename)}</a><br/>\n"
            for f in sorted(files, key=lambda f: (f.version, f.filename))
        )
        page = (
            f"<!DOCTYPE html>\n<html><head><title>Links for {html.escape(name)}</title></head>"
            f"<body>\n<h1>Links for {html.escape(name)}</h1>\n{links}</body></html>\n"
        )
        return text_response(200, page, "text/html; charset=utf-8")

    def _download(self, feed: world.Feed, project: str, version: str, filename: str) -> Response:
        for f in self._files(feed, None):
            if f.project == normalize(project) and f.version == version and f.filename == filename:
                return Response(
                    200,
                    [
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Disposition", f'attachment; filename="{f.filename}"'),
                    ],
                    f.data,
                )
        return json_response(404, {"message": f"The file '{filename}' doesn't exist."})

    def _upload(self, request: Request, feed: world.Feed) -> Response:
        try:
            parts = multipart.parse(request.body, request.header("Content-Type") or "")
        except ValueError as exc:
            return json_response(400, {"message": f"Bad upload request: {exc}"})
        fields = {p.name: p for p in parts}
        if fields.get(":action") is None or fields[":action"].text() != "file_upload":
            return json_response(400, {"message": "Unsupported ':action'."})
        content = fields.get("content")
        name, version = fields.get("name"), fields.get("version")
        if content is None or not content.filename or name is None or version is None:
            return json_response(400, {"message": "'name', 'version' and 'content' are required."})
        filename = content.filename.rsplit("/", 1)[-1]
        if not filename.endswith((".whl", ".tar.gz", ".zip")):
            return json_response(400, {"message": f"'{filename}' is not a Python package file."})
        digest = hashlib.sha256(content.content).hexdigest()
        claimed = fields.get("sha256_digest")
        if claimed is not None and claimed.text().strip().lower() != digest:
            return json_response(400, {"message": "The sha256 digest does not match the file."})
        package = PackageFile(
            normalize(name.text()), version.text().strip(), filename, content.content, digest
        )
        with self.state.lock:
            existing = self.state.packages.in_feed(feed.guid, None)
            if any(f.filename == filename for f in existing):
                return json_response(
                    409,
                    {
                        "message": f"The feed '{feed.name}' already contains file '{filename}' in "
                        f"package '{package.project} {package.version}'."
                    },
                )
            self.state.packages.uploads.setdefault(feed.guid, []).append(package)
        request.note.extra["filename"] = filename
        return text_response(200, "")


def delegated_ops(ident: Identified) -> set[str]:
    """What an Entra user token's delegated permissions (its scp) let it do on a feed, before
    the user's role: user_impersonation everything, vso.packaging reads, vso.packaging_write
    (and _manage) reads and uploads."""
    granted = set(str((ident.claims or {}).get("scp", "")).split())
    if world.USER_IMPERSONATION in granted:
        return {READ, WRITE}
    ops: set[str] = set()
    if granted & READ_SCOPES:
        ops.add(READ)
    if granted & WRITE_SCOPES:
        ops.add(WRITE)
    return ops


def request_kind(method: str, rest: list[str]) -> str:
    """What a request under .../pypi/ asks for, judged before it is authenticated."""
    if rest[:1] != ["pypi"]:
        return "other"
    if method in ("GET", "HEAD") and rest[1:2] == ["simple"] and len(rest) in (2, 3):
        return "index"
    if method in ("GET", "HEAD") and rest[1:2] == ["download"] and len(rest) == 5:
        return "download"
    if method == "POST" and rest[1:] == ["upload"]:
        return "upload"
    return "other"


def never_signed_in_message(upn: str, org: world.Org) -> str:
    return (
        f"TF401444: Please sign-in at least once as {org.tenant}\\{upn} in a web browser to "
        f"enable access to the service. (https://dev.azure.com/{org.name})"
    )
