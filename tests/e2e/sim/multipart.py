"""A small multipart/form-data parser (the `cgi` module is gone from the standard library)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content: bytes

    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _params(header_value: str, header: str) -> Message:
    message = Message()
    message[header] = header_value
    return message


def boundary_of(content_type: str) -> str | None:
    message = _params(content_type, "Content-Type")
    if message.get_content_type() != "multipart/form-data":
        return None
    boundary = message.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def parse(body: bytes, content_type: str) -> list[Part]:
    boundary = boundary_of(content_type)
    if boundary is None:
        raise ValueError("not multipart/form-data")
    # Every delimiter but the first follows a CRLF that belongs to it, not to the content.
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    pieces = (b"\r\n" + body).split(delimiter)
    parts: list[Part] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        # The rest of the delimiter line (transport padding and its CRLF) is not content.
        _, _, after = piece.partition(b"\r\n")
        head, sep, content = after.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without header block")
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        params = _params(disposition, "Content-Disposition")
        field_name = params.get_param("name", header="content-disposition")
        filename = params.get_param("filename", header="content-disposition")
        if not isinstance(field_name, str):
            raise ValueError("part without a name")
        parts.append(Part(field_name, filename if isinstance(filename, str) else None, content))
    else:
        raise ValueError("multipart body without closing delimiter")
    return parts
