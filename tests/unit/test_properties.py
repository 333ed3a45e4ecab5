"""Property-based tests: whatever a client, a file, the environment or the network hands us,
nothing escapes as an exception, nothing reaches stdout, and nothing leaves the machine.

Each property counts the cases it tried (tests/unit/properties.py); conftest prints the total.
`scripts/fuzz` runs this file with the `long` profile: at least 100,000 cases.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import math
import socket
import stat
import string
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import keyring.cli
import keyring.core
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from keyring.credentials import Credential
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from artifacts_keyring_nofuss import (
    challenges,
    claims,
    devops,
    endpoints,
    identities,
    local,
    log,
    store,
)
from artifacts_keyring_nofuss import settings as config
from artifacts_keyring_nofuss.backend import AzureArtifactsBackend
from artifacts_keyring_nofuss.deadline import Deadline
from artifacts_keyring_nofuss.discovery import Discovery, interpret
from artifacts_keyring_nofuss.errors import (
    ConfigError,
    DiscoveryError,
    ExchangeError,
    NofussError,
    SourceError,
)
from artifacts_keyring_nofuss.exchange import session_token
from artifacts_keyring_nofuss.feeds import FEED_HOSTS, Feed, parse_feed_url
from artifacts_keyring_nofuss.http import NetworkError, Response
from artifacts_keyring_nofuss.identities import Prepared, TokenRequest, Unavailable, azure_cli
from artifacts_keyring_nofuss.keys import Key, minted_at
from artifacts_keyring_nofuss.lookup import Engine
from artifacts_keyring_nofuss.settings import Settings
from artifacts_keyring_nofuss.tokens import Token

from .helpers import NULL_TENANT, OTHER_TENANT, TENANT, app_jwt, b64url, make_jwt, user_jwt
from .properties import STATS, Property, budget

# ================================================================================= strategies


def dumps(value: object) -> bytes:
    return json.dumps(value).encode("utf-8")


def _same(value: Any) -> Any:
    return value


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """one_of, each strategy `weight` times as likely as a plain branch. (one_of folds repeats
    of one strategy object into a single branch: each repeat here is a distinct copy.)"""
    return st.one_of(*(strategy.map(_same) for weight, strategy in choices for _ in range(weight)))


# Text the environment can hold (no NUL, no lone surrogates).
ENV_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
PRINTABLE_ASCII = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60
)
HEADER_TEXT = st.one_of(
    st.text(max_size=80), st.binary(max_size=80).map(lambda raw: raw.decode("latin-1"))
)

# Numbers that break naive code: huge integers (finite in JSON, not as floats), NaN, infinity,
# and the edges of what claims, datetime and the store accept.
EDGE_NUMBERS = st.sampled_from(
    [
        0,
        1,
        -1,
        0.5,
        -0.0,
        5e-324,
        2**31,
        2**53 + 1,
        2**63,
        -(2**63),
        2**64,
        4_000_000_000,
        4_102_444_799,
        4_102_444_800,
        253_402_300_799,
        253_402_300_800,
        1e15,
        1e300,
        -1e300,
        1.7976931348623157e308,
    ]
)
# Integers past the largest float, built on demand: a strategy's repr (which hypothesis
# computes, in events for instance) must stay small.
HUGE_INTEGERS = st.tuples(st.sampled_from([1, -1]), st.sampled_from([308, 309, 400])).map(
    lambda p: p[0] * 10 ** p[1]
)
NUMBERS = st.one_of(EDGE_NUMBERS, HUGE_INTEGERS, st.integers(), st.floats())
JSON_SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20))
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
DEEP = st.sampled_from([10, 999, 1_001, 5_000]).flatmap(
    lambda depth: st.sampled_from(
        [b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth, b"[" * depth]
    )
)
ODD_BYTES = st.sampled_from(
    [b"", b"null", b"{", b"NaN", b"1e400", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00"]
)
LONG_DIGITS = st.sampled_from([400, 5_000]).map(lambda n: b"9" * n)  # past int's digit limit
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"])


def encoded(texts: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.tuples(texts, ENCODINGS).map(lambda p: p[0].encode(p[1], errors="replace"))


def json_bytes(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON documents as a file or a body holds them, and the bytes that are not JSON at all."""
    return st.one_of(
        values.map(dumps),
        encoded(values.map(json.dumps)),
        st.binary(max_size=80),
        DEEP,
        ODD_BYTES,
        LONG_DIGITS,
    )


# --- JWTs ------------------------------------------------------------------------------------

CLAIM_TEXT = st.one_of(
    st.sampled_from(["alice@contoso.com", TENANT, "", "a\nb", "\u0130@x", "x" * 257]),
    st.text(max_size=40),
    JSON,
)
CLAIMS = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.one_of(NUMBERS, JSON),
        "idtyp": st.one_of(st.sampled_from(["user", "app", "User", ""]), JSON),
        "scp": st.one_of(st.sampled_from(["user_impersonation", ""]), JSON),
        "oid": CLAIM_TEXT,
        "upn": CLAIM_TEXT,
        "unique_name": CLAIM_TEXT,
        "preferred_username": CLAIM_TEXT,
        "appid": CLAIM_TEXT,
        "azp": CLAIM_TEXT,
        "sub": CLAIM_TEXT,
        "tid": CLAIM_TEXT,
    },
)
B64URL_TEXT = st.text(string.ascii_letters + string.digits + "-_", max_size=40)


def _standard_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@st.composite
def jwts(draw: st.DrawFn) -> str:
    """Real-looking JWTs: base64url segments, a payload of arbitrary JSON (or not JSON)."""
    header = draw(st.one_of(st.just(b'{"alg":"RS256","typ":"JWT"}'), json_bytes(JSON)))
    payload = draw(st.one_of(CLAIMS.map(dumps), json_bytes(JSON)))
    encode = draw(st.sampled_from([b64url, _standard_b64]))
    parts = [encode(header), encode(payload), draw(B64URL_TEXT)]
    shape = draw(st.sampled_from(["jwt", "jwt", "jwt", "short", "long", "blank", "odd", "pad"]))
    if shape == "short":
        parts = parts[:2]
    elif shape == "long":
        parts.append(draw(B64URL_TEXT))
    elif shape == "blank":
        parts[1] = ""
    elif shape == "odd":
        at = draw(st.integers(0, len(parts[1])))
        parts[1] = parts[1][:at] + draw(st.text(min_size=1, max_size=3)) + parts[1][at:]
    elif shape == "pad":
        parts[1] += "=" * draw(st.integers(1, 5))
    return ".".join(parts)


JWTS = jwts()

# --- service strings -------------------------------------------------------------------------

HOSTILE = st.sampled_from(
    [
        "",
        "@",
        ":",
        "\\",
        "/",
        "//",
        "%",
        "%2F",
        "%2f",
        "%40",
        "%00",
        "%zz",
        "%5C",
        "%2e%2e",
        "..",
        ".",
        "?",
        "#",
        "[",
        "]",
        "[::1]",
        ";",
        ",",
        " ",
        "\t",
        "\r\n",
        "\x00",
        "\x7f",
        "\u212a",  # Kelvin sign: lower-cases to ASCII k
        "\u0430",  # Cyrillic a
        "\uff0e",  # full-width full stop
        "\u3002",  # ideographic full stop
        "\u200b",  # zero-width space
        "\u0130",  # dotted capital I
        "evil.com",
        "evil.com\\@",
        "evil.com#@",
        "evil.com?@",
        "evil.com%2f@",
        "127.0.0.1",
        "localhost",
        "-",
        "_",
        "~",
        "(",
        ")",
        "!",
        "$",
        "&",
        "'",
        "*",
        "+",
        "=",
    ]
)
URL_CHARS = st.sampled_from([*"aZ09.-_@:/\\?#%[]!$&'()*+,;=~ \t", "\u212a", "\uff0e"])
PLAIN_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
AZURE_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._ ()~-]{0,12}", fullmatch=True)
LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
ODD_NAMES = st.one_of(HOSTILE, st.text(max_size=8), st.text(URL_CHARS, max_size=10))
NAMES = weighted(
    (2, PLAIN_NAME),
    (1, AZURE_NAME.map(lambda name: quote(name, safe=""))),
    (1, AZURE_NAME.map(lambda name: quote(name, safe="()~"))),
    (1, ODD_NAMES),
)


def mostly(usual: st.SearchStrategy[Any], *odd: object) -> st.SearchStrategy[Any]:
    """`usual` three times in four, else one of the odd ones."""
    return weighted((3, usual), (1, st.sampled_from(odd)))


@st.composite
def azure_urls(draw: st.DrawFn) -> str:
    """Service strings that look like Azure Artifacts feeds, with hostile parts anywhere:
    each part is the usual one three times in four."""
    scheme = draw(
        mostly(
            st.sampled_from(["https://", "https://", ""]),
            *["HTTPS://", "hTtPs://", "http://", "https:/", "https:///", "ftp://", "//"],
            "https:\\\\",
        )
    )
    userinfo = draw(
        mostly(
            st.just(""),
            *["u@", "u:p@", ":@", "@", "user:pa%40ss@", "a@b@", "VssSessionToken:x@"],
            *["evil.com@", "evil.com\\@", "%00@", "\u212a@"],
        )
    )
    suffix = draw(
        mostly(
            st.sampled_from(FEED_HOSTS),
            *["evil.com", "pkgs.dev.azure.com.evil.com", "dev.azure.com", "visualstudio.com"],
            "xpkgs.dev.azure.com",
        )
    )
    label = draw(weighted((1, st.just("")), (2, LABEL), (1, PLAIN_NAME), (1, HOSTILE)))
    host = f"{label}.{suffix}" if label else suffix
    host = draw(mostly(st.just(host), host.upper(), host.title(), host + ".", host + ".."))
    port = draw(
        mostly(
            st.sampled_from(["", "", ":443", ":8443"]),
            *[":0", ":", ":65535", ":65536", ":-1", ":0443", ":+443", ":443:443", ":a"],
            ":\u0664\u0664\u0663",
        )
    )
    segments = [draw(NAMES)]
    if draw(st.booleans()):
        segments.append(draw(NAMES))
    segments.append(
        draw(mostly(st.just("_packaging"), "_PACKAGING", "_Packaging", "%5Fpackaging", ""))
    )
    feed = draw(NAMES)
    view = draw(weighted((2, st.none()), (1, NAMES)))
    segments.append(feed + (f"@{view}" if view is not None else ""))
    segments.append(
        draw(
            mostly(
                st.sampled_from(["pypi/simple/", "pypi/upload/", "pypi/simple/pkg-name/"]),
                *["pypi/upload", "pypi/simple", "", "nuget/v3/index.json", "PyPI/Upload"],
                "../x",
            )
        )
    )
    tail = draw(mostly(st.just(""), "?q=1", "#frag", "?@evil.com", "#@evil.com/"))
    url: str = scheme + userinfo + host + port + "/" + "/".join(segments) + tail
    if draw(st.integers(0, 3)) == 0:  # now and then, one more hostile piece anywhere
        at = draw(st.integers(0, len(url)))
        url = url[:at] + draw(HOSTILE) + url[at:]
    return url


AZURE_URLS = azure_urls()
USERNAMES = st.one_of(
    st.none(), st.just(""), st.sampled_from(["VssSessionToken", "__token__"]), st.text(max_size=20)
)


@st.composite
def feed_urls(draw: st.DrawFn) -> str:
    """Well-formed feed URLs on every feed host, with the names Azure DevOps allows and some it
    does not (dots and underscores in organisations, subdomains of the path-style hosts)."""
    suffix = draw(st.sampled_from(FEED_HOSTS))
    path: list[str] = []
    if suffix == "pkgs.visualstudio.com":
        host = f"{draw(LABEL)}.{suffix}"
    else:
        sub = draw(weighted((2, st.just("")), (1, LABEL)))
        host = f"{sub}.{suffix}" if sub else suffix
        path.append(quote(draw(PLAIN_NAME)))
    if draw(st.booleans()):
        path.append(quote(draw(AZURE_NAME)))
    view = draw(st.one_of(st.none(), AZURE_NAME))
    path += ["_packaging", quote(draw(AZURE_NAME) + (f"@{view}" if view else ""), safe="@")]
    path.append(draw(st.sampled_from(["pypi/simple/", "pypi/upload/"])))
    port = draw(st.sampled_from(["", "", ":443", ":8443"]))
    return f"https://{host}{port}/" + "/".join(path)


FEED_URLS = feed_urls()
FEEDS: st.SearchStrategy[Feed] = FEED_URLS.map(parse_feed_url).filter(  # type: ignore[assignment]
    lambda found: found is not None
)
SERVICES = weighted(
    (1, FEED_URLS), (2, AZURE_URLS), (1, st.text()), (1, st.text(URL_CHARS, max_size=60))
)

# --- what the network answers --------------------------------------------------------------

TENANTS = st.one_of(
    st.sampled_from([TENANT, TENANT, OTHER_TENANT, NULL_TENANT, TENANT.upper()]),
    st.uuids().map(str),
    st.sampled_from([252, 253, 254]).map(lambda n: "a." * ((n - 3) // 2) + "com"[: 3 + n % 2]),
    st.sampled_from(
        [
            "contoso.onmicrosoft.com",
            "contoso.com",
            "common",
            "organizations",
            "consumers",
            "-rf",
            "../etc",
            "a b",
            "contoso.com.",
            "1.2.3.4",
            "contoso..com",
            "%2e%2e",
            "\u0663\u0663.com",
            "\uff43ontoso.com",
            f"{TENANT}/x",
            f" {TENANT} ",
        ]
    ),
    st.text(max_size=40),
)
OTHER_HOSTS = [
    *sorted(endpoints.LOGIN_HOSTS),
    "vssps.dev.azure.com",
    "vssps.codedev.ms",
    "vssps.vsts.me",
    "app.vssps.visualstudio.com",
    "contoso.vssps.visualstudio.com",
    "evil.com",
    "login.microsoftonline.com.evil.com",
    "vssps.dev.azure.com.evil.com",
    "contoso.vssps.visualstudio.com.evil.com",
    "127.0.0.1",
    "[::1]",
    "localhost",
    "a_b.vssps.visualstudio.com",
    "-x.vssps.visualstudio.com",
    "x..vssps.visualstudio.com",
    ".vssps.visualstudio.com",
]
UNICODE_PIECES = ["\uff0e", "\u212a", "\u0430", "\u200b", "\u00a0", "\u2028", "\u0130", "\u00e9"]
URL_MUTATIONS = [
    "host",
    "port",
    "userinfo",
    "query",
    "path",
    "scheme",
    "unicode",
    "case",
    "dot",
    "space",
    "backslash",
    "percent",
]


@st.composite
def mutated_url(draw: st.DrawFn, url: str, org: str, most: int = 3) -> str:
    """A URL from a real answer, changed (up to `most` times) the ways a proxy, a DNS hijack
    or a bug would."""
    parts = urlsplit(url)
    scheme, host, path = parts.scheme, parts.netloc, parts.path
    hosts = st.sampled_from([*OTHER_HOSTS, f"{org}.vssps.visualstudio.com"])
    for kind in draw(st.lists(st.sampled_from(URL_MUTATIONS), max_size=most)):
        if kind == "host":
            host = draw(hosts)
        elif kind == "port":
            host += draw(st.sampled_from([":443", ":8443", ":0", ":", ":443 "]))
        elif kind == "userinfo":
            host = draw(st.sampled_from(["u@", "u:p@", "evil.com@", "@"])) + host
        elif kind == "query":
            path += draw(st.sampled_from(["?x=1", "?", "#f", "?@evil.com", "#@evil.com"]))
        elif kind == "path":
            path += draw(
                st.sampled_from(["/x", "/..", "/.", "//", "/%2e%2e", "/x/y", f"/{OTHER_TENANT}"])
            )
        elif kind == "scheme":
            scheme = draw(st.sampled_from(["http", "HTTPS", "ftp", "", "https:"]))
        elif kind == "unicode":
            at = draw(st.integers(0, len(host)))
            host = host[:at] + draw(st.sampled_from(UNICODE_PIECES)) + host[at:]
        elif kind == "case":
            host = host.upper()
        elif kind == "dot":
            host += "."
        elif kind == "space":
            path = draw(st.sampled_from([" ", "\t", "%20"])) + path
        elif kind == "backslash":
            path = path.replace("/", "\\")
        elif kind == "percent":
            host = host.replace(".", "%2e", 1)
    return f"{scheme}://{host}{path}" if scheme else f"//{host}{path}"


STATUSES = st.one_of(
    st.sampled_from([401, 401, 200, 203, 301, 302, 307, 399, 400, 403, 404, 500, 0, -1, 999]),
    st.integers(100, 599),
    st.integers(),
)
CHALLENGE_FORMS = [
    "Bearer authorization_uri={}",
    'Bearer realm="", authorization_uri={}',
    "bearer AUTHORIZATION_URI={}",
    'Basic realm="x", Bearer authorization_uri={}',
    "Bearer token68==, authorization_uri={}",
    "Bearer authorization_uri={}, authorization_uri=https://evil.com/",
    "Bearer\tauthorization_uri = {}",
]


@st.composite
def discovery_answer(draw: st.DrawFn, feed: Feed, calm: bool = False) -> Response:
    """A feed's anonymous 401 as Azure DevOps sends it, then mutated header by header (`calm`:
    less often, so that a lookup gets past discovery more often than not)."""
    most = draw(st.sampled_from([0, 0, 0, 1])) if calm else 3
    keep = 40 if calm else 6
    tenant = draw(st.sampled_from([TENANT, "contoso.onmicrosoft.com"]) if calm else TENANTS)
    login = f"https://{draw(st.sampled_from(sorted(endpoints.LOGIN_HOSTS)))}/{tenant}"
    endpoint = draw(
        st.sampled_from(
            [
                f"https://vssps.dev.azure.com/{feed.org}",
                f"https://vssps.dev.azure.com/{feed.org}/",
                f"https://{feed.org}.vssps.visualstudio.com/",
                "https://app.vssps.visualstudio.com/",
                f"https://vssps.codedev.ms/{feed.org}",
            ]
        )
    )
    uri = draw(mutated_url(login, feed.org, most))
    if draw(st.booleans()):
        uri = '"' + uri.replace("\\", "\\\\").replace('"', '\\"') + '"'
    real = [
        ("WWW-Authenticate", draw(st.sampled_from(CHALLENGE_FORMS)).format(uri)),
        ("WWW-Authenticate", 'Basic realm="https://pkgsprodcus1.pkgs.visualstudio.com/"'),
        ("WWW-Authenticate", "TFS-Federated"),
        ("X-VSS-ResourceTenant", tenant if calm else draw(st.one_of(st.just(tenant), TENANTS))),
        ("X-VSS-AuthorizationEndpoint", draw(mutated_url(endpoint, feed.org, most))),
        ("X-TFS-ProcessId", "3c5f7a1e-0000-4000-8000-000000000000"),
        ("Content-Type", "text/html; charset=utf-8"),
    ]
    headers: list[tuple[str, str]] = []
    for name, value in real:
        fate = draw(st.sampled_from(["keep"] * keep + ["drop", "replace", "lower", "twice"]))
        if fate == "drop":
            continue
        if fate == "replace":
            value = draw(HEADER_TEXT)  # noqa: PLW2901 - the mutated header is the point
        if fate == "lower":
            name = name.lower()  # noqa: PLW2901
        headers.append((name, value))
        if fate == "twice":
            headers.append((name, draw(HEADER_TEXT)))
    names = st.sampled_from(
        ["WWW-Authenticate", "X-VSS-ResourceTenant", "X-VSS-AuthorizationEndpoint", "X-Other"]
    )
    headers += draw(st.lists(st.tuples(names, HEADER_TEXT), max_size=0 if calm else 2))
    headers = draw(st.permutations(headers))
    status = draw(mostly(st.just(401), 200, 403, 404) if calm else STATUSES)
    return Response(status, tuple(headers), draw(st.binary(max_size=20)))


@st.composite
def discovery_cases(draw: st.DrawFn) -> tuple[Feed, Response]:
    feed = draw(FEEDS)
    return feed, draw(discovery_answer(feed))


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """validTo as the token service writes it (seven fractional digits, Z), and its neighbours:
    every year from 1 to 9999, offsets up to a day, unicode digits, spaces."""
    when = draw(st.datetimes())
    text = (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )
    if draw(st.booleans()):
        text += "." + draw(st.text("0123456789", min_size=1, max_size=9))
    text += draw(
        st.one_of(
            st.sampled_from(["Z", "Z", "", "+00:00", "-00:00", "+23:59", "-23:59", "+99:99"]),
            st.builds(
                lambda sign, hours, minutes: f"{sign}{hours:02d}:{minutes:02d}",
                st.sampled_from("+-"),
                st.integers(0, 23),
                st.integers(0, 59),
            ),
        )
    )
    if draw(st.integers(0, 7)) == 0:
        text = text.replace("0", "\u0660") if draw(st.booleans()) else f" {text} "
    return text


TIMES = st.one_of(iso_times(), st.text(max_size=40), JSON_SCALARS)
SESSION_TOKENS = st.one_of(
    PRINTABLE_ASCII,
    JWTS,
    st.text(max_size=40),
    JSON_SCALARS,
    st.sampled_from(["a b", "a\tb", "\u00e9", ""]),
    st.sampled_from([16 * 1024, 16 * 1024 + 1]).map(lambda n: "x" * n),
)
EXCHANGE_DOCUMENTS = st.one_of(
    st.fixed_dictionaries(
        {"token": SESSION_TOKENS},
        optional={
            "validTo": TIMES,
            "validFrom": TIMES,
            "scope": JSON_SCALARS,
            "message": st.one_of(st.text(max_size=300), JSON),
        },
    ),
    st.fixed_dictionaries({}, optional={"message": st.one_of(st.text(max_size=300), JSON)}),
    JSON,
)
EXCHANGE_STATUSES = st.one_of(
    st.sampled_from([200] * 6 + [400, 400, 401, 203, 302, 500, 503]), STATUSES
)
EXCHANGE_RESPONSES = st.builds(
    lambda status, body: Response(status, (("Content-Type", "application/json"),), body),
    EXCHANGE_STATUSES,
    st.one_of(EXCHANGE_DOCUMENTS.map(dumps), EXCHANGE_DOCUMENTS.map(dumps), json_bytes(JSON)),
)

# --- files -----------------------------------------------------------------------------------

FUTURE = 4_000_000_000  # 2096: not expired, and within every bound
STORE_NUMBERS = st.one_of(st.just(FUTURE), NUMBERS, st.text(max_size=5), st.none())
SESSION_ENTRIES = st.one_of(
    st.fixed_dictionaries(
        {
            "token": st.one_of(PRINTABLE_ASCII, SESSION_TOKENS),
            "expires_on": STORE_NUMBERS,
            "org": st.one_of(st.just("contoso"), JSON_SCALARS),
            "scope": st.one_of(st.just("vso.packaging"), JSON_SCALARS),
            "identity": st.one_of(st.just("azure_cli:alice@contoso.com"), JSON_SCALARS),
            "who": st.one_of(st.just("alice@contoso.com"), JSON_SCALARS),
        }
    ),
    JSON,
)
DISCOVERY_ENTRIES = st.one_of(
    st.fixed_dictionaries(
        {
            "tenant": st.one_of(st.just(TENANT), JSON_SCALARS),
            "authority": st.one_of(
                st.just(f"https://login.microsoftonline.com/{TENANT}"), JSON_SCALARS
            ),
            "token_service": st.one_of(
                st.just("https://vssps.dev.azure.com/contoso/"), JSON_SCALARS
            ),
            "expires": STORE_NUMBERS,
        }
    ),
    JSON,
)
STORE_KEYS = st.one_of(st.sampled_from(["pkgs.dev.azure.com/contoso", "k"]), st.text(max_size=10))
STORE_LAYOUTS = st.fixed_dictionaries(
    {
        "version": mostly(st.just(store.FORMAT), None, 2, "1", 1.0, True),
        "discovery": mostly(st.dictionaries(STORE_KEYS, DISCOVERY_ENTRIES, max_size=3), [], None),
        "sessions": mostly(st.dictionaries(STORE_KEYS, SESSION_ENTRIES, max_size=3), [], "x"),
    }
)
STORE_FILES = weighted((4, STORE_LAYOUTS.map(dumps)), (1, json_bytes(JSON)))

CFG_LINES = st.one_of(
    st.sampled_from(
        ["[artifacts_keyring_nofuss]"] * 3
        + [
            "[ARTIFACTS_KEYRING_NOFUSS]",
            "[backend]",
            "[DEFAULT]",
            "[",
            "[]",
            "[artifacts",
            "provider",
            "provider =",
            "provider = azure_cli",
            "provider = azure-identity",
            "provider = AZURE_CLI",
            "Provider: az",
            "provider = %(x)s",
            "provider = %",
            "  continued",
            "\tprovider = x",
            "; comment",
            "# comment",
            "=",
            ":",
            "",
            "default-keyring = keyring.backends.null.Keyring",
            "\ufeff[artifacts_keyring_nofuss]",
        ]
    ),
    st.builds(
        lambda key, sep, value: f"{key}{sep}{value}",
        st.sampled_from(["provider", "PROVIDER", " provider", "provider ", "provider\x00"]),
        st.sampled_from(["=", ":", " = ", "=="]),
        st.text(max_size=20),
    ),
    st.text(max_size=30),
)
KEYRINGRC_FILES = st.one_of(
    st.none(),
    st.builds(
        lambda lines, newline, encoding: newline.join(lines).encode(encoding, errors="replace"),
        st.lists(CFG_LINES, max_size=8),
        st.sampled_from(["\n", "\r\n", "\r"]),
        ENCODINGS,
    ),
    st.binary(max_size=120),
    encoded(st.text(max_size=80)),
)
ENV_VALUES = st.one_of(
    st.none(),
    ENV_TEXT,
    LONG_DIGITS.map(lambda digits: digits.decode("ascii")),
    st.sampled_from(
        [
            "5",
            "480",
            "10080",
            "10081",
            "4",
            "0",
            "-1",
            "1e3",
            "nan",
            "inf",
            "-inf",
            " 30 ",
            "1_0",
            "\uff15",
            "0x10",
            "",
            "  ",
            "azure_cli",
            "azure-identity",
            "AZURE_CLI",
            "none",
            "600",
            "600.0000001",
            "1",
            "0.999",
        ]
    ),
)
SETTING_VARS = (
    config.PROVIDER_VAR,
    *config.SESSION_MINUTES_VARS,
    config.AZ_TIMEOUT_VAR,
    config.DEADLINE_VAR,
)

AZ_USERS = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("user"),
            "name": st.one_of(st.sampled_from(["alice@contoso.com", "Bob@Fabrikam.COM"]), JSON),
        }
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(["user", "servicePrincipal", "User"]), JSON),
            "name": st.one_of(
                st.sampled_from(["alice@contoso.com", "ALICE@CONTOSO.COM", "\u0130@x", "a\nb"]),
                st.text(max_size=300),
                JSON,
            ),
        },
    ),
    JSON,
)
AZ_SUBSCRIPTION = st.fixed_dictionaries(
    {"isDefault": mostly(st.just(True), False, None, 1, "true"), "user": AZ_USERS},
    optional={"id": st.text(max_size=10), "tenantId": st.just(TENANT)},
)
AZ_SUBSCRIPTIONS = weighted((2, AZ_SUBSCRIPTION), (1, JSON))
AZ_PROFILES = st.one_of(
    st.fixed_dictionaries(
        {"subscriptions": st.one_of(st.lists(AZ_SUBSCRIPTIONS, max_size=4), JSON)},
        optional={"installationId": JSON},
    ),
    JSON,
)
AZ_SIGNED_IN = st.fixed_dictionaries(
    {"subscriptions": st.lists(AZ_SUBSCRIPTIONS, min_size=1, max_size=3)},
    optional={"installationId": st.uuids().map(str)},
)
AZ_PROFILE_FILES = st.one_of(
    st.none(),
    AZ_SIGNED_IN.map(dumps),
    AZ_SIGNED_IN.map(lambda profile: b"\xef\xbb\xbf" + dumps(profile)),  # az writes a BOM
    json_bytes(AZ_PROFILES),
)

# ================================================================================= isolation

CLOSED_PROXY_HOST = "127.0.0.1"
CLOSED_PROXY_PORT = 9  # discard: nothing listens there, so a connection is refused at once
CLOSED_PROXY = f"http://{CLOSED_PROXY_HOST}:{CLOSED_PROXY_PORT}"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass
class Offline:
    """Everything a test body may need to know about the offline world it runs in."""

    tmp: Path
    reached: list[object] = field(default_factory=list)  # destinations other than the proxy
    slept: list[float] = field(default_factory=list)  # the backoff the code asked for

    def reset(self) -> None:
        self.reached.clear()
        self.slept.clear()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Offline]:
    """No network, no `az`, no cache on disk: every proxy is a closed local port, and any
    other connection or name lookup is refused and recorded.

    The retry backoff is recorded instead of slept: the property is about what escapes, and
    1.5 s of backoff per lookup would leave room for a few hundred cases instead of thousands.
    """
    world = Offline(tmp=tmp_path)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    for name in ("NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARS:
        monkeypatch.setenv(name, CLOSED_PROXY)
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_TIMEOUT", "2")
    monkeypatch.setenv("ARTIFACTS_KEYRING_NOFUSS_CACHE", "0")
    monkeypatch.setenv("PATH", str(empty))

    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> None:
        if not (
            isinstance(address, tuple) and address[:2] == (CLOSED_PROXY_HOST, CLOSED_PROXY_PORT)
        ):
            world.reached.append(address)
            raise OSError(errno.ENETUNREACH, "the property tests are offline")
        real_connect(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != CLOSED_PROXY_HOST:
            world.reached.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "the property tests are offline")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(time, "sleep", world.slept.append)
    yield world


@contextmanager
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        yield out, err


UNEXPECTED = "please report it"  # the backend's line for an exception that is not NofussError

# ================================================================================= the boundary

BACKEND = Property("backend get_credential/get_password")


@budget(2, fixtures=True)
@given(service=SERVICES, username=USERNAMES)
@example(service="https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/", username=None)
@example(service="https://contoso.pkgs.visualstudio.com/_packaging/f/pypi/upload/", username="")
@example(
    service="https://u:p@pkgs.dev.azure.com:8443/c/p/_packaging/f@v/pypi/simple/", username="x"
)
def test_the_backend_never_raises_never_prints_and_stays_offline(
    offline: Offline, service: str, username: str | None
) -> None:
    BACKEND.tried()
    backend = AzureArtifactsBackend()
    ours = parse_feed_url(service) is not None
    event("an Azure Artifacts feed" if ours else "not ours")
    asks: list[Callable[[str, Any], object]] = [backend.get_credential, backend.get_password]
    for ask in asks:
        offline.reset()  # the negative cache would answer the second question from memory
        with captured() as (out, err):
            answer, _ = BACKEND.call(ask, service, username)
        assert out.getvalue() == "", "stdout is the password channel of `keyring get`"
        assert offline.reached == [], "a lookup went past the (closed) proxy"
        lines = err.getvalue().splitlines()
        assert UNEXPECTED not in err.getvalue(), lines
        assert len(lines) <= 1 and all(line.startswith(log.PREFIX) for line in lines), lines
        assert all(line.isprintable() for line in lines), "stderr is the user's terminal"
        if not ours:
            assert lines == [], "a service that is not ours must cost nothing, not even a line"
        if isinstance(answer, Credential):
            assert isinstance(answer.username, str) and answer.username
            assert isinstance(answer.password, str) and answer.password
        else:
            assert answer is None or (isinstance(answer, str) and answer)


CLI = Property("keyring CLI get")
CLI_SPEC = st.tuples(
    SERVICES,
    USERNAMES,
    st.sampled_from(["password", "creds"]),
    st.sampled_from(["plain", "json"]),
)


@budget(0.5, fixtures=True)
@given(spec=CLI_SPEC)
def test_keyring_get_with_this_backend_exits_1_and_prints_nothing(
    offline: Offline, spec: tuple[str, str | None, str, str]
) -> None:
    """`keyring get` as pip and uv run it, in this process, with this backend as the keyring."""
    service, username, mode, output = spec
    if mode == "password" and username is None:
        username = "VssSessionToken"  # keyring itself insists on one in this mode
    argv = ["--mode", mode, "--output", output, "get", "--", service]
    argv += [] if username is None else [username]
    with captured():
        try:
            parsed = keyring.cli.CommandLineTool().parser.parse_args(argv)
        except SystemExit:
            parsed = None
    # argparse has opinions about strings such as "--": those never reach a backend.
    assume(parsed is not None and (parsed.service, parsed.username) == (service, username))
    CLI.tried()
    offline.reset()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keyring.core, "_keyring_backend", AzureArtifactsBackend())
        with captured() as (out, err):
            returned, exited = CLI.call(
                keyring.cli.CommandLineTool().run, argv, allowed=(SystemExit,)
            )
    assert offline.reached == []
    assert UNEXPECTED not in err.getvalue()
    if isinstance(exited, SystemExit):
        assert exited.code == 1, (exited.code, err.getvalue())
        assert out.getvalue() == ""
    else:
        assert returned is None and out.getvalue().strip()


# --- the whole lookup, with the network and the identity sources scripted --------------------

FLOW = Property("lookup.credential, scripted network and sources")


@dataclass
class Script:
    feed: Feed
    discovery: Response | None  # None: the feed cannot be reached
    exchanges: list[Response]
    sent: list[str] = field(default_factory=list)


class ScriptedHttp:
    """http.Http's interface, answering from a script: what discovery and the exchange get."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def close(self) -> None:
        pass

    def get(self, url: str, bearer: str | None = None) -> Response:
        assert url == self.script.feed.url, "discovery probes the feed URL and nothing else"
        assert bearer is None
        if self.script.discovery is None:
            raise NetworkError("cannot connect (scripted)")
        return self.script.discovery

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        self.script.sent.append(url)
        if not endpoints.is_token_url(url):  # as http.Http does, before anything is sent
            raise NetworkError(f"refusing to send a token to {url!r} (scripted)")
        assert self.script.exchanges, "the exchange asks at most twice"
        return self.script.exchanges.pop(0)


@dataclass
class ScriptedSource:
    """An identity source that answers from a script; the Azure CLI one reads real `az` output
    with the real parser."""

    name: str
    identity: str | None
    answer: bytes | Unavailable | SourceError

    def prepare(self, request: TokenRequest) -> Prepared:
        return Prepared(self.identity)

    def get_token(self, request: TokenRequest) -> Token | Unavailable:
        if isinstance(self.answer, SourceError):
            raise self.answer
        if isinstance(self.answer, Unavailable):
            return self.answer
        if self.name == "azure_cli":
            secret, stated = azure_cli._parse_output(self.answer)
            return Token.from_secret(secret, "azure_cli", stated, identity=self.identity)
        return Token.from_secret(self.answer.decode("ascii", "replace"), self.name, FUTURE)


ACCESS_TOKENS = st.one_of(
    st.builds(user_jwt),
    st.builds(user_jwt, exp=st.one_of(st.just(FUTURE), NUMBERS)),
    st.just(make_jwt({"idtyp": "user", "scp": "x", "oid": "o", "tid": TENANT})),  # no exp
    st.builds(app_jwt),
    PRINTABLE_ASCII,
    JWTS,
)
AZ_OUTPUTS = st.one_of(
    st.builds(
        lambda token, expires_on: dumps({"accessToken": token, "expires_on": expires_on}),
        ACCESS_TOKENS,
        st.one_of(st.just(FUTURE), st.just(str(FUTURE))),
    ),
    st.fixed_dictionaries(
        {"accessToken": ACCESS_TOKENS},
        optional={
            "expires_on": st.one_of(
                NUMBERS,
                st.sampled_from(["1e300", "-1e300", "nan", "inf", "-1", "99999999999", "x"]),
                JSON,
            ),
            "tokenType": st.just("Bearer"),
        },
    ).map(dumps),
    json_bytes(JSON),
)
SOURCE_ANSWERS = weighted(
    (4, AZ_OUTPUTS),
    (1, st.builds(Unavailable, st.text(max_size=20))),
    (1, st.builds(SourceError, st.text(max_size=20))),
)
CLI_IDENTITIES = st.one_of(
    st.none(),
    st.just("azure_cli:alice@contoso.com"),
    st.text(max_size=20).map(lambda name: f"azure_cli:{name}"),
)


@st.composite
def warm_store(draw: st.DrawFn, feed: Feed, identity: str | None) -> bytes:
    """A cache file that holds a discovery and a session token for exactly this lookup."""
    try:
        service = endpoints.default_authorization_endpoint(feed.host, feed.org)
    except endpoints.UntrustedEndpoint:
        service = "https://vssps.dev.azure.com/contoso/"
    service = draw(
        st.one_of(st.just(service), st.sampled_from(OTHER_HOSTS).map("https://{}/".format))
    )
    entry = draw(SESSION_ENTRIES)
    if isinstance(entry, dict) and draw(st.booleans()):
        entry.update(org=feed.org, scope=feed.scope, identity=identity or "")
    authority = f"https://login.microsoftonline.com/{TENANT}"
    minted = minted_at(Discovery(TENANT, authority, service))
    document = {
        "version": store.FORMAT,
        "discovery": {
            store.discovery_key(feed.host, feed.org): {
                "tenant": draw(st.one_of(st.just(TENANT), TENANTS, st.none())),
                "authority": authority,
                "token_service": service,
                "expires": draw(STORE_NUMBERS),
            }
        },
        "sessions": {Key(minted, feed.scope, identity or "", devops.SESSION).digest(): entry},
    }
    return dumps(document)


@st.composite
def lookups(draw: st.DrawFn) -> tuple[Script, dict[str, ScriptedSource], bytes | None]:
    feed = draw(FEEDS)
    discovery = draw(
        st.one_of(
            discovery_answer(feed, calm=True),
            discovery_answer(feed, calm=True),
            discovery_answer(feed),
            st.none(),
        )
    )
    exchanges = draw(st.lists(EXCHANGE_RESPONSES, min_size=2, max_size=2))
    identity = draw(CLI_IDENTITIES)
    sources = {
        "azure_cli": ScriptedSource("azure_cli", identity, draw(SOURCE_ANSWERS)),
        "azure_identity": ScriptedSource(
            "azure_identity",
            None,
            draw(
                st.one_of(
                    st.just(Unavailable("no workload identity (scripted)")),
                    st.builds(SourceError, st.text(max_size=20)),
                    st.builds(lambda: app_jwt().encode("ascii")),
                )
            ),
        ),
    }
    disk = draw(st.one_of(st.none(), STORE_FILES, warm_store(feed, identity)))
    return Script(feed, discovery, exchanges), sources, disk


@budget(1.5, fixtures=True)
@given(case=lookups())
def test_a_lookup_ends_in_a_token_or_a_nofuss_error(
    offline: Offline, case: tuple[Script, dict[str, ScriptedSource], bytes | None]
) -> None:
    """Discovery, the sources, the exchange and the on-disk cache, with every answer scripted:
    the flow returns a usable token or fails with a message (NofussError), never anything else
    (which the backend would report as "unexpected ... please report it")."""
    script, sources, disk = case
    FLOW.tried()
    offline.reset()
    with tempfile.TemporaryDirectory(dir=offline.tmp) as tmp, pytest.MonkeyPatch.context() as mp:
        mp.delenv("ARTIFACTS_KEYRING_NOFUSS_CACHE")
        mp.setenv("XDG_CACHE_HOME", tmp)
        mp.setenv("ARTIFACTS_KEYRING_NOFUSS_PROVIDER", ",".join(sources))
        if disk is not None:
            directory = Path(tmp) / local.APP_DIR
            directory.mkdir(mode=0o700)
            (directory / store.FILE_NAME).write_bytes(disk)
            (directory / store.FILE_NAME).chmod(0o600)
        engine = Engine(
            load=sources.__getitem__,
            network=lambda deadline, env: ScriptedHttp(script),
            probe=lambda feed, token, env, deadline: None,  # the feed cannot be asked
        )
        with captured() as (out, _):
            token, error = FLOW.call(engine.credential, script.feed, allowed=(NofussError,))
    event(f"outcome: {type(error or token).__name__}" + (" (user)" if token and token.user else ""))
    event(f"exchange asked: {bool(script.sent)}")
    assert out.getvalue() == ""
    assert offline.reached == []
    # http.Http refuses any other URL too; the lookup should never ask it to.
    assert all(endpoints.is_token_url(url) for url in script.sent), script.sent
    if token is not None:
        assert isinstance(token, Token)
        assert isinstance(token.secret, str) and token.secret
        if token.user:  # a session token: from the exchange or the cache, both validated
            assert token.secret.isascii() and token.secret.isprintable()


# ================================================================================= parsers

FEEDS_P = Property("feeds.parse_feed_url")


def _port(host: str) -> int:
    _, _, port = host.partition(":")
    return int(port) if port else 443


@budget(2)
@given(service=SERVICES)
@example(service="https://evil.com\\@pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/")
@example(service="https://pkgs.dev.azure.com#@evil.com/contoso/_packaging/f/pypi/simple/")
@example(service="https://pkgs.dev.azure.com:443/Contoso/_packaging/f/pypi/simple/")
@example(service="https://%2D.pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/")
def test_a_feed_is_where_the_client_sends_the_request(service: str) -> None:
    FEEDS_P.tried()
    found, _ = FEEDS_P.call(parse_feed_url, service)
    if found is None:
        return
    assert isinstance(found, Feed)
    hostname = found.host.partition(":")[0]
    # The host we vouch for is the host an HTTP client (urllib3: requests, pip) connects to.
    try:
        target = parse_url(service if "://" in service else "https://" + service)
    except (LocationParseError, ValueError):
        target = None  # no client can send this anywhere
    if target is not None:
        # (case-insensitively: urllib3 upper-cases percent-escapes in a host)
        assert (target.host or "").lower().rstrip(".") == hostname.lower()
        assert (443 if target.port is None else target.port) == _port(found.host)
    # The organisation: lower-case, printable. (Percent-encoded spaces are accepted on purpose:
    # tests/unit/test_feeds.py keeps "my%20org".)
    assert found.org == found.org.lower()
    assert found.org.isprintable()
    assert not any(ch.isspace() and ch != " " for ch in found.org)
    # Feed.url: https, the same host, no userinfo, query or fragment.
    assert found.url.startswith("https://")
    parts = urlsplit(found.url)
    assert parts.username is None and parts.password is None
    assert parts.query == "" and parts.fragment == ""
    assert parts.hostname == hostname
    assert (443 if parts.port is None else parts.port) == _port(found.host)
    try:
        url = parse_url(found.url)
    except (LocationParseError, ValueError):
        url = None  # only for hosts no client can reach, such as "%.pkgs.dev.azure.com"
    if url is not None:
        assert url.auth is None and (url.host or "").lower() == hostname.lower()
    # What we probe and cache is ours again, as the same feed.
    assert parse_feed_url(found.url) == found
    index = parse_feed_url(found.index_url)
    assert index is not None
    assert (index.host, index.org, index.project, index.feed, index.view) == (
        found.host,
        found.org,
        found.project,
        found.feed,
        found.view,
    )


CHALLENGES_P = Property("challenges.parse")
CHALLENGE_TEXT = st.one_of(
    HEADER_TEXT,
    st.lists(
        st.sampled_from([*' \t,="\\', "Bearer", "basic", "uri", "=", "a", "\u00e9"]), max_size=30
    ).map("".join),
    st.lists(st.sampled_from(CHALLENGE_FORMS), max_size=3).map(", ".join),
    st.sampled_from([16 * 1024 - 7, 16 * 1024 - 6]).map(lambda n: "Bearer " + "a" * n),
    st.just('"' * 999),
)


@budget(1)
@given(values=st.lists(CHALLENGE_TEXT, max_size=5))
def test_challenges_parse_anything(values: list[str]) -> None:
    CHALLENGES_P.tried()
    found, _ = CHALLENGES_P.call(challenges.parse, values)
    assert isinstance(found, list)
    for challenge in found:
        assert isinstance(challenge, challenges.Challenge)
        assert challenge.scheme and challenge.scheme == challenge.scheme.lower()
        assert not any(ch in ' \t,="' for ch in challenge.scheme)
        assert all(isinstance(v, str) and k == k.lower() for k, v in challenge.params.items())
        assert challenge.token68 is None or isinstance(challenge.token68, str)


DISCOVERY_P = Property("discovery.interpret")


@budget(1.5)
@given(case=discovery_cases())
@example(
    case=(
        parse_feed_url("https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"),
        Response(
            401,
            (
                (
                    "WWW-Authenticate",
                    f"Bearer authorization_uri=https://login.windows.net/{TENANT}",
                ),
                ("X-VSS-ResourceTenant", TENANT),
                ("X-VSS-AuthorizationEndpoint", "https://vssps.dev.azure.com/contoso"),
            ),
            b"",
        ),
    )
)
@example(
    case=(
        parse_feed_url("https://x.pkgs.dev.azure.com/a_b/_packaging/f/pypi/simple/"),
        Response(
            401,
            (("WWW-Authenticate", f"Bearer authorization_uri=https://login.windows.net/{TENANT}"),),
            b"",
        ),
    )
)
def test_discovery_trusts_only_allowlisted_answers(case: tuple[Feed, Response]) -> None:
    feed, response = case
    DISCOVERY_P.tried()
    found, error = DISCOVERY_P.call(interpret, feed, response, allowed=(DiscoveryError,))
    event(f"outcome: {type(error or found).__name__}")
    if error is not None:
        assert str(error)
        return
    assert isinstance(found, Discovery)
    assert endpoints.is_token_url(found.authorization_endpoint), found
    assert found.tenant is None or endpoints.valid_tenant(found.tenant), found
    assert urlsplit(found.authority).hostname in endpoints.LOGIN_HOSTS, found


ROUND_TRIP = Property("discovery -> cache -> discovery")


@budget(0.5)
@given(case=discovery_cases())
def test_a_discovery_survives_the_cache(case: tuple[Feed, Response]) -> None:
    """lookup re-validates a discovery read back from disk: what discovery produced must pass
    that check, or the cache is ignored (and the feed asked again) on every lookup."""
    feed, response = case
    ROUND_TRIP.tried()
    found, _ = ROUND_TRIP.call(interpret, feed, response, allowed=(DiscoveryError,))
    if found is None:
        return
    service, refused = ROUND_TRIP.call(
        endpoints.authorization_endpoint,
        found.authorization_endpoint,
        feed.org,
        allowed=(endpoints.UntrustedEndpoint,),
    )
    assert refused is None, (feed, found, refused)
    assert service == found.authorization_endpoint
    authority, refused = ROUND_TRIP.call(
        endpoints.login_authority, found.authority, allowed=(endpoints.UntrustedEndpoint,)
    )
    assert refused is None, (found, refused)
    assert authority is not None and authority[0] == found.authority
    assert authority[1] is None or authority[1] == found.tenant


EXCHANGE_P = Property("exchange.session_token")
FOUND = Discovery(
    tenant=TENANT,
    authority=f"https://login.microsoftonline.com/{TENANT}",
    authorization_endpoint="https://vssps.dev.azure.com/contoso/",
)
BEARER = Token.from_secret(user_jwt(), "azure_cli")


@dataclass
class ExchangeHttp:
    answers: list[Response]

    def post_json(
        self, url: str, body: dict[str, Any], bearer: str, replay_safe: bool = False
    ) -> Response:
        assert endpoints.is_token_url(url)
        return self.answers.pop(0)


@budget(1.5)
@given(
    feed=FEEDS,
    answers=st.lists(EXCHANGE_RESPONSES, min_size=2, max_size=2),
    minutes=st.one_of(st.sampled_from([5, 480, config.MAX_SESSION_MINUTES]), st.floats(5, 10080)),
)
@example(
    feed=parse_feed_url("https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"),
    answers=[
        Response(200, (), dumps({"token": "abc", "validTo": "9999-12-31T23:59:59.9999999Z"})),
        Response(200, (), b"{}"),
    ],
    minutes=480,
)
def test_the_exchange_answer_is_a_usable_token_or_an_exchange_error(
    feed: Feed, answers: list[Response], minutes: float
) -> None:
    EXCHANGE_P.tried()
    token, error = EXCHANGE_P.call(
        session_token,
        ExchangeHttp(list(answers)),
        feed,
        FOUND,
        BEARER,
        minutes,
        allowed=(ExchangeError,),
    )
    event(f"outcome: {type(error or token).__name__}")
    if error is not None:
        assert isinstance(error, NofussError) and str(error)
        assert BEARER.secret not in str(error)
        return
    assert isinstance(token, Token)
    secret = token.secret
    assert isinstance(secret, str) and 0 < len(secret) <= 16 * 1024
    assert secret.isascii() and secret.isprintable() and " " not in secret
    assert token.expires_on is None or (math.isfinite(token.expires_on) and token.expires_on > 0)
    assert token.user and token.identity == BEARER.identity


CLAIMS_TEXT_P = Property("claims of arbitrary strings")
CLAIMS_JWT_P = Property("claims of JWTs")


def _check_claims(prop: Property, token: str) -> None:
    read, _ = prop.call(claims.read_claims, token)
    event(f"claims: {read is not None}")
    assert read is None or isinstance(read, dict)
    exp, _ = prop.call(claims.expiry, read)
    assert exp is None or (isinstance(exp, float) and 0 < exp < 4_102_444_800)
    user, _ = prop.call(claims.is_user, read)
    assert isinstance(user, bool)
    for reader in (claims.identity, claims.display_name, claims.tenant):
        text, _ = prop.call(reader, read)
        assert text is None or (isinstance(text, str) and text and text.isprintable())
    built, _ = prop.call(Token.from_secret, token, "property", None)
    assert built is not None and built.user == user and built.expires_on == exp


@budget(0.5)
@given(
    token=st.one_of(
        st.text(max_size=100),
        PRINTABLE_ASCII,
        st.sampled_from([32 * 1024, 32 * 1024 + 1]).map(lambda n: "eyJ.e30." + "x" * (n - 8)),
    )
)
def test_claims_of_any_string(token: str) -> None:
    CLAIMS_TEXT_P.tried()
    _check_claims(CLAIMS_TEXT_P, token)


@budget(1)
@given(token=JWTS)
def test_claims_of_any_jwt(token: str) -> None:
    CLAIMS_JWT_P.tried()
    _check_claims(CLAIMS_JWT_P, token)


# ================================================================================= files

STORE_P = Property("store.Store over any file")


@budget(1)
@given(
    content=STORE_FILES,
    mode=st.sampled_from([0o600, 0o600, 0o600, 0o400, 0o644]),
    host=st.sampled_from(["pkgs.dev.azure.com", "k"]),
    org=st.sampled_from(["contoso", ""]),
    key=STORE_KEYS,
)
@example(
    content=dumps(
        {"version": 1, "discovery": {}, "sessions": {"k": {"token": "t", "expires_on": 10**400}}}
    ),
    mode=0o600,
    host="pkgs.dev.azure.com",
    org="contoso",
    key="k",
)
def test_the_store_survives_any_file(
    content: bytes, mode: int, host: str, org: str, key: str
) -> None:
    STORE_P.tried()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / local.APP_DIR
        directory.mkdir(mode=0o700)
        path = directory / store.FILE_NAME
        path.write_bytes(content)
        path.chmod(mode)
        cache = store.Store(directory, Deadline(30))
        lookup_key = Key("https://vssps.dev.azure.com/contoso/", "vso.packaging", key, "session")
        new = Key("https://vssps.dev.azure.com/contoso/", "vso.packaging", "new", "session")

        loaded, _ = STORE_P.call(cache.load)
        event(f"layout kept: {loaded is not None and loaded == cache._read()}")
        assert isinstance(loaded, dict)
        assert isinstance(loaded["discovery"], dict) and isinstance(loaded["sessions"], dict)
        session, _ = STORE_P.call(cache.session, lookup_key, margin=300)
        assert session is None or math.isfinite(session.expires_on)
        values, _ = STORE_P.call(cache.discovery, host, org)
        assert values is None or all(v is None or isinstance(v, str) for v in values.values())
        entries, _ = STORE_P.call(cache.entries)
        assert entries is not None
        assert all(math.isfinite(e.expires_on) and e.token.isascii() for e in entries)

        entry = store.Entry("session-token", FUTURE, "contoso", "vso.packaging", "id", "who")
        STORE_P.call(cache.put_session, new, entry)
        info = path.lstat()
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        written = json.loads(path.read_bytes())
        assert written["version"] == store.FORMAT
        assert written["sessions"][new.digest()]["token"] == "session-token"
        assert cache.session(new, margin=300) == entry
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".sessions-")]


CONFIG_P = Property("config and identities.chain over any settings")


@budget(1)
@given(
    keyringrc=KEYRINGRC_FILES,
    env=st.fixed_dictionaries({name: ENV_VALUES for name in SETTING_VARS}),
    forced=st.one_of(st.none(), ENV_TEXT),
)
def test_settings_fail_only_as_config_errors(
    keyringrc: bytes | None, env: dict[str, str | None], forced: str | None
) -> None:
    CONFIG_P.tried()
    path = config.keyringrc_path()
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    if keyringrc is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(keyringrc)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            if value is None:
                mp.delenv(name, raising=False)
            else:
                mp.setenv(name, value)
        loaded, error = CONFIG_P.call(Settings.load, allowed=(ConfigError,))
        event(f"settings: {'ConfigError' if error else 'value'}")
        if loaded is not None:
            forced, where = loaded.provider, loaded.provider_where
            assert forced is None or (forced and forced == forced.strip())
            assert isinstance(where, str)
            CONFIG_P.call(identities.chain, forced, where, allowed=(ConfigError,))
            assert 5 <= loaded.session_minutes <= config.MAX_SESSION_MINUTES
            assert 1 <= loaded.az_timeout <= 600 and 1 <= loaded.deadline <= 600
        else:
            assert str(error)
        order, _ = CONFIG_P.call(identities.chain, forced, "a test", allowed=(ConfigError,))
        assert order is None or set(order) <= set(identities.SPECS)


PROFILE_P = Property("azure_cli.signed_in_account over any azureProfile.json")


@budget(0.5)
@given(content=AZ_PROFILE_FILES)
def test_the_az_profile_is_read_without_raising(content: bytes | None) -> None:
    PROFILE_P.tried()
    directory = azure_cli.config_dir()
    assert directory is not None
    path = directory / "azureProfile.json"
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(content)
    account, _ = PROFILE_P.call(azure_cli.signed_in_account)
    event(f"account: {account is not None}")
    assert account is None or (isinstance(account, str) and account and account.isprintable())


AZ_OUTPUT_P = Property("azure_cli output parsing")


@budget(0.5)
@given(stdout=AZ_OUTPUTS)
@example(stdout=b"[" * 5_000 + b"]" * 5_000)
@example(stdout=dumps({"accessToken": user_jwt(), "expires_on": 10**400}))
def test_az_output_is_a_token_or_a_source_error(stdout: bytes) -> None:
    """What `az account get-access-token` printed: a token, or SourceError (which the lookup
    reports as that source's failure), never anything else."""
    AZ_OUTPUT_P.tried()
    parsed, error = AZ_OUTPUT_P.call(azure_cli._parse_output, stdout, allowed=(SourceError,))
    event(f"outcome: {type(error or parsed).__name__}")
    if parsed is not None:
        secret, stated = parsed
        assert secret and secret.isascii() and secret.isprintable() and " " not in secret
        assert stated is None or 0 < stated < 4_102_444_800


# ================================================================================= log

REDACT_P = Property("log.redact")
RUN_CHARS = string.ascii_letters + string.digits + "+_~-"
SEPARATORS = st.characters(exclude_characters=RUN_CHARS + ".=")


@st.composite
def secrets(draw: st.DrawFn) -> str:
    """What redact promises to hide: JWTs, and long opaque runs of letters and digits."""
    if draw(st.booleans()):
        segment = st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=40)
        return f"eyJ{draw(segment)}.{draw(segment)}." + draw(st.one_of(st.just(""), segment))
    core = draw(st.text(RUN_CHARS, min_size=30, max_size=80))
    core += draw(st.sampled_from(string.digits)) + draw(st.sampled_from(string.ascii_letters))
    core = "".join(draw(st.permutations(core)))
    assume(not log._GUID.fullmatch(core))
    return core + draw(st.sampled_from(["", "=", "=="]))


@budget(1)
@given(
    secret=secrets(),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    left=SEPARATORS,
    right=st.one_of(SEPARATORS, SEPARATORS.map(lambda ch: "." + ch)),
    template=st.sampled_from(
        [
            "{}",
            "no credential for contoso/f: the token service answered HTTP 500 ({})",
            "Authorization: Bearer {}",
            'azure_identity: service principal sign-in failed: {"error": "{}"}',
        ]
    ),
)
def test_redact_hides_embedded_secrets_and_is_idempotent(
    secret: str, before: str, after: str, left: str, right: str, template: str
) -> None:
    REDACT_P.tried()
    assume(secret not in before and secret not in after)
    text = template.replace("{}", before + left + secret + right + after)
    once, _ = REDACT_P.call(log.redact, text)
    assert once is not None and secret not in once, once
    assert log.redact(once) == once


# ================================================================================= settings


def test_the_property_profiles_are_registered() -> None:
    """Both profiles exist and the running one says so (conftest prints the count with it)."""
    for name in ("ci", "long"):
        settings.get_profile(name)
    assert STATS.summary().startswith("property tests: ")
    default = settings.default
    assert default is not None
    assert HealthCheck.too_slow in default.suppress_health_check
    assert default.deadline is None
