"""plain-index.example: an ordinary unauthenticated PEP 503 index with the seeded wheels, for
"a second index never triggers a credential lookup" scenarios."""

from __future__ import annotations

import html

from . import world
from .httpserver import Request, Response, not_found, text_response
from .state import SimState, normalize


class PlainIndex:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        segs = request.segments()
        request.note.kind = "plain-index"
        if request.method not in ("GET", "HEAD"):
            return not_found()
        with self.state.lock:
            files = list(self.state.packages.seeds)
        if segs == ["simple"]:
            names = sorted({f.project for f in files})
            links = "".join(f'<a href="{n}/">{n}</a><br/>\n' for n in names)
            return text_response(
                200,
                f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n",
                "text/html; charset=utf-8",
            )
        if len(segs) == 2 and segs[0] == "simple":
            name = normalize(segs[1])
            mine = [f for f in files if f.project == name]
            if not mine:
                return not_found()
            links = "".join(
                f'<a href="https://{world.PLAIN_INDEX_HOST}/files/{html.escape(f.filename)}'
                f'#sha256={f.sha256}">{html.escape(f.filename)}</a><br/>\n'
                for f in mine
            )
            return text_response(
                200,
                f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n",
                "text/html; charset=utf-8",
            )
        if len(segs) == 2 and segs[0] == "files":
            for f in files:
                if f.filename == segs[1]:
                    return Response(200, [("Content-Type", "application/octet-stream")], f.data)
        return not_found()
