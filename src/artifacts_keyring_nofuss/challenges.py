"""Parsing `WWW-Authenticate` (RFC 9110 section 11.6.1): several challenges per line or per header,
quoted values with escapes, token68, and parameters in any case. Pure and total: garbage in gives
fewer challenges, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_MAX_HEADER = 16 * 1024
_SEPARATORS = ' \t,="'


@dataclass
class Challenge:
    scheme: str  # lower-case
    params: dict[str, str] = field(default_factory=dict)  # lower-case names; first one wins
    token68: str | None = None


def parse(values: list[str]) -> list[Challenge]:
    challenges: list[Challenge] = []
    for value in values:
        if isinstance(value, str) and len(value) <= _MAX_HEADER:
            challenges.extend(_parse_one(value))
    return challenges


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _token(text: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(text) and text[pos] not in _SEPARATORS:
        pos += 1
    return text[start:pos], pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """A quoted-string starting at the opening quote; an unterminated one runs to the end."""
    out: list[str] = []
    pos += 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if ch == '"':
            return "".join(out), pos + 1
        out.append(ch)
        pos += 1
    return "".join(out), pos


def _parse_one(text: str) -> list[Challenge]:
    found: list[Challenge] = []
    current: Challenge | None = None
    pos = 0
    while pos < len(text):
        pos = _skip(text, pos, " \t,")
        if pos >= len(text):
            break
        if text[pos] in '="':
            # Stray punctuation: skip one character and resynchronise.
            if text[pos] == '"':
                _, pos = _quoted(text, pos)
            else:
                pos += 1
            continue
        word, pos = _token(text, pos)
        after = _skip(text, pos, " \t")
        if after < len(text) and text[after] == "=":
            equals_end = _skip(text, after, "=")
            rest = _skip(text, equals_end, " \t")
            is_token68 = equals_end - after > 1 or rest >= len(text) or text[rest] == ","
            if current is not None and is_token68 and not current.params and not current.token68:
                current.token68 = word + "=" * (equals_end - after)
                pos = equals_end
                continue
            if current is None:
                pos = rest
                continue
            if rest < len(text) and text[rest] == '"':
                val, pos = _quoted(text, rest)
            else:
                val, pos = _token(text, rest)
            current.params.setdefault(word.lower(), val)
            continue
        # A bare word: a new challenge's scheme, possibly followed by token68 or parameters.
        current = Challenge(scheme=word.lower())
        found.append(current)
        nxt = _skip(text, pos, " \t")
        if nxt < len(text) and text[nxt] not in ',="':
            candidate, end = _token(text, nxt)
            end_eq = _skip(text, end, "=")
            tail = _skip(text, end_eq, " \t")
            if end_eq > end and (tail >= len(text) or text[tail] == ","):
                current.token68 = candidate + "=" * (end_eq - end)
                pos = end_eq
            elif end_eq == end and (tail >= len(text) or text[tail] == ","):
                current.token68 = candidate
                pos = end
    return found
