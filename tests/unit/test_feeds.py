from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import urllib3
from hypothesis import example, given
from hypothesis import strategies as st

from artifacts_keyring_nofuss.feeds import (
    EXTRA_HOSTS_VARS,
    READ_SCOPE,
    WRITE_SCOPE,
    Feed,
    extra_hosts,
    parse_feed_url,
    prefix_match,
    same_feed,
)

from .helpers import feed

GUID = "0d1e1b0f-3e8e-4a7b-9a6b-1234567890ab"


# (service string, host, org, project, feed, view, write)
# fmt: off
ACCEPTED: list[tuple[str, str, str, str | None, str, str | None, bool]] = [
    ("https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com/contoso/Proj/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", "Proj", "feed", None, False),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed@Release/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", "Release", False),
    ("https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Local/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", "proj", "feed", "Local", False),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, True),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, True),
    ("https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Release/pypi/upload/",
     "pkgs.dev.azure.com", "contoso", "proj", "feed", "Release", True),
    (f"https://pkgs.dev.azure.com/contoso/_packaging/{GUID}/pypi/download/pkg/1.0/pkg-1.0.tar.gz",
     "pkgs.dev.azure.com", "contoso", None, "0d1e1b0f-3e8e-4a7b-9a6b-1234567890ab", None, False),
    ("https://contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
     "contoso.pkgs.visualstudio.com", "contoso", None, "feed", None, False),
    ("https://Contoso.pkgs.visualstudio.com/proj/_packaging/feed/pypi/simple/",
     "contoso.pkgs.visualstudio.com", "contoso", "proj", "feed", None, False),
    ("https://contoso.pkgs.visualstudio.com/_packaging/feed/pypi/upload/",
     "contoso.pkgs.visualstudio.com", "contoso", None, "feed", None, True),
    ("https://pkgs.codedev.ms/contoso/_packaging/feed/pypi/simple/",
     "pkgs.codedev.ms", "contoso", None, "feed", None, False),
    ("https://pkgs.vsts.me/contoso/_packaging/feed/pypi/simple/",
     "pkgs.vsts.me", "contoso", None, "feed", None, False),
    ("https://__token__@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://VssSessionToken@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://user:pw@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, True),
    ("https://user:pw@contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
     "contoso.pkgs.visualstudio.com", "contoso", None, "feed", None, False),
    ("pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple",
     "contoso.pkgs.visualstudio.com", "contoso", None, "feed", None, False),
    ("HTTPS://PKGS.DEV.AZURE.COM/CONTOSO/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com/contoso/_PACKAGING/feed/PyPI/Upload",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, True),
    ("https://pkgs.dev.azure.com:443/contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("pkgs.dev.azure.com:443/contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com:8443/contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com:8443", "contoso", None, "feed", None, False),
    ("https://contoso.pkgs.visualstudio.com:4443/_packaging/feed/pypi/simple/",
     "contoso.pkgs.visualstudio.com:4443", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com/%43ontoso/My%20Project/_packaging/my%2Dfeed%40Release/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", "My Project", "my-feed", "Release", False),
    ("https://pkgs.dev.azure.com/contoso/%5Fpackaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com./contoso/_packaging/feed/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://contoso.pkgs.visualstudio.com./_packaging/feed/pypi/simple/",
     "contoso.pkgs.visualstudio.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/?a=1#frag",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed",
     "pkgs.dev.azure.com", "contoso", None, "feed", None, False),
    ("https://pkgs.dev.azure.com/contoso/_packaging/my.feed_1~x/pypi/simple/",
     "pkgs.dev.azure.com", "contoso", None, "my.feed_1~x", None, False),
]
# fmt: on


@pytest.mark.parametrize(("service", "host", "org", "project", "name", "view", "write"), ACCEPTED)
def test_accepted_forms(
    service: str,
    host: str,
    org: str,
    project: str | None,
    name: str,
    view: str | None,
    write: bool,
) -> None:
    found = parse_feed_url(service)
    assert found is not None
    assert (found.host, found.org, found.project, found.feed, found.view, found.write) == (
        host,
        org,
        project,
        name,
        view,
        write,
    )
    assert found.scope == (WRITE_SCOPE if write else READ_SCOPE)


@pytest.mark.parametrize("service", [row[0] for row in ACCEPTED])
def test_feed_url_is_a_clean_https_url_on_the_same_host(service: str) -> None:
    found = parse_feed_url(service)
    assert found is not None
    parts = urlsplit(found.url)
    assert parts.scheme == "https"
    assert parts.netloc == found.host  # no userinfo, default port dropped
    assert "@" not in parts.netloc
    assert parts.query == ""
    assert parts.fragment == ""
    assert "?" not in found.url
    assert "#" not in found.url
    assert found.org == found.org.lower()
    assert found.host == found.host.lower()


def test_feed_url_keeps_the_path_the_user_gave() -> None:
    found = parse_feed_url(
        "https://u:p@pkgs.dev.azure.com/Contoso/Proj/_packaging/feed@Release/pypi/simple/?x#y"
    )
    assert found is not None
    assert (
        found.url == "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/feed@Release/pypi/simple/"
    )


@pytest.mark.parametrize(
    ("service", "label"),
    [
        ("https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/", "contoso/feed"),
        (
            "https://pkgs.dev.azure.com/contoso/Proj/_packaging/feed/pypi/simple/",
            "contoso/Proj/feed",
        ),
        (
            "https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Release/pypi/simple/",
            "contoso/proj/feed@Release",
        ),
        ("https://contoso.pkgs.visualstudio.com/_packaging/f@v/pypi/simple/", "contoso/f@v"),
    ],
)
def test_label(service: str, label: str) -> None:
    found = parse_feed_url(service)
    assert found is not None
    assert found.label == label


def test_upload_and_read_urls_of_one_feed_differ_only_in_scope() -> None:
    read = parse_feed_url("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/")
    write = parse_feed_url("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload/")
    assert read is not None
    assert write is not None
    assert (read.scope, write.scope) == ("vso.packaging", "vso.packaging_write")
    assert (read.host, read.org, read.feed) == (write.host, write.org, write.feed)


def test_a_path_segment_named_upload_elsewhere_is_not_an_upload() -> None:
    found = parse_feed_url("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/upload/")
    assert found is not None
    assert found.write is False


def _punycode(host: str) -> str:
    return host.encode("idna").decode("ascii")


REJECTED: list[object] = [
    # other hosts and lookalikes
    "https://pypi.org/simple/",
    "https://evilpkgs.visualstudio.com/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com.evil.com/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs-dev-azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://pkgsdev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.co/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.codeapp.ms.evil.com/contoso/_packaging/feed/pypi/simple/",
    "https://contoso.pkgs.visualstudio.com.evil.com/_packaging/feed/pypi/simple/",
    "https://pkgs.visualstudio.com/contoso/_packaging/feed/pypi/simple/",
    "https://a.b.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
    "https://-contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
    "https://contoso_x.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com@evil.com/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com:443@evil.com/contoso/_packaging/feed/pypi/simple/",
    "https://evil.com#@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://evil.com?@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    # a backslash ends the authority for the HTTP clients (urllib3, WHATWG): the request goes
    # to evil.com while the credential would be for pkgs.dev.azure.com
    "https://evil.com\\@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "evil.com\\@pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://evil.com\\@contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com\\@evil.com/contoso/_packaging/feed/pypi/simple/",
    # unicode homoglyphs and their punycode
    "https://pkgs.dev.\u0430zure.com/contoso/_packaging/feed/pypi/simple/",  # Cyrillic a
    "https://\uff50kgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",  # fullwidth p
    "https://p\u212ags.dev.azure.com/contoso/_packaging/feed/pypi/simple/",  # Kelvin sign
    "https://contoso.p\u212ags.visualstudio.com/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure\u3002com/contoso/_packaging/feed/pypi/simple/",  # ideographic stop
    "https://" + _punycode("pkgs.dev.\u0430zure.com") + "/contoso/_packaging/feed/pypi/simple/",
    "https://" + _punycode("pkgs.dev.azur\u0435.com") + "/contoso/_packaging/feed/pypi/simple/",
    "https://" + _punycode("p\u043ekgs.dev.azure.com") + "/contoso/_packaging/feed/pypi/simple/",
    "https://xn--pkgs-dev-azure-com.evil/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.xn--zure-43d.com/contoso/_packaging/feed/pypi/simple/",
    # schemes
    "http://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "HTTP://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "ftp://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "file://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "//pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https:pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https:///pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    # what other clients ask keyring about
    "poetry-repository-x",
    "poetry-repository-pkgs.dev.azure.com",
    "python-poetry-check",
    "pdm-foo",
    "pdm-pkgs.dev.azure.com",
    "pypi.org",
    "upload.pypi.org",
    "",
    " ",
    "\t",
    "\n",
    # whitespace and control characters
    " https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/ ",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/\n",
    "https://pkgs.dev.azure.com/contoso/_packaging/fe ed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/\r\nX-Injected: 1",
    "https://pkgs.dev.azure.com/con\x00toso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com\x00.evil.com/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/\x1b[31m",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed\u200b/pypi/simple/",
    # percent-encoded control characters: a decoded name must be a plain name
    "https://pkgs.dev.azure.com/contoso%00/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso%0A/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed%0A/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/proj%0a/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed@view%0A/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso%2F_packaging/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/%2e%2e/_packaging/feed/pypi/simple/",
    # very long
    "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/" + "a" * 5000,
    "https://pkgs.dev.azure.com/" + "c" * 300 + "/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/" + "f" * 101 + "/pypi/simple/",
    "x" * 100_000,
    # not strings
    None,
    b"https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    bytearray(b"https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
    42,
    3.5,
    ["https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"],
    object(),
    # no organisation, no feed
    "pkgs.dev.azure.com",
    "pkgs.dev.azure.com/",
    "https://pkgs.dev.azure.com",
    "https://pkgs.dev.azure.com/",
    "https://pkgs.dev.azure.com:443",
    "contoso.pkgs.visualstudio.com",
    "https://contoso.pkgs.visualstudio.com/",
    "https://pkgs.dev.azure.com/contoso",
    "https://pkgs.dev.azure.com/contoso/",
    "https://pkgs.dev.azure.com/contoso/proj/",
    "https://pkgs.dev.azure.com/contoso/_apis/packaging/feeds",
    "https://pkgs.dev.azure.com/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging",
    "https://pkgs.dev.azure.com/contoso/_packaging/",
    "https://pkgs.dev.azure.com/contoso/_packaging/@view/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/feed@a@b/pypi/simple/",
    # _packaging too deep
    "https://pkgs.dev.azure.com/contoso/a/b/_packaging/feed/pypi/simple/",
    "https://contoso.pkgs.visualstudio.com/a/b/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/proj/../_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/../_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/_packaging/../pypi/simple/",
    "https://pkgs.dev.azure.com/.contoso/_packaging/feed/pypi/simple/",
    # ports that are not ports, hosts that are not hosts
    "https://pkgs.dev.azure.com:99999/contoso/_packaging/feed/pypi/simple/",
    "https://pkgs.dev.azure.com:x/contoso/_packaging/feed/pypi/simple/",
    "https://[::1]/contoso/_packaging/feed/pypi/simple/",
    "https://[pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
    "https://127.0.0.1/contoso/_packaging/feed/pypi/simple/",
    # garbage
    "://",
    "https://",
    "@@@",
    "%%%",
    "\\\\pkgs.dev.azure.com\\contoso\\_packaging\\feed",
    "_packaging",
    "\udcff",
]


@pytest.mark.parametrize("service", REJECTED, ids=lambda s: repr(s)[:60])
def test_rejected(service: object) -> None:
    assert parse_feed_url(service) is None


@given(st.one_of(st.text(), st.binary(), st.none(), st.integers()))
def test_never_raises(service: object) -> None:
    result = parse_feed_url(service)
    assert result is None or isinstance(result, Feed)


_URL_CHARS = st.sampled_from(list("aZ09.-_@:/\\?#%[]!$&'()*+,;=~ \t\u212a\u0430\uff0e"))
_HOSTS = st.sampled_from(
    ["pkgs.dev.azure.com", "contoso.pkgs.visualstudio.com", "pkgs.codedev.ms", "evil.com"]
)


@given(
    prefix=st.text(_URL_CHARS, max_size=12),
    host=_HOSTS,
    middle=st.text(_URL_CHARS, max_size=12),
)
@example(prefix="evil.com\\@", host="pkgs.dev.azure.com", middle="")
@example(prefix="evil.com\\@", host="contoso.pkgs.visualstudio.com", middle="")
def test_the_host_we_vouch_for_is_the_host_an_http_client_connects_to(
    prefix: str, host: str, middle: str
) -> None:
    """A credential handed out for a service string goes wherever the client sends that URL."""
    service = f"https://{prefix}{host}{middle}/contoso/_packaging/feed/pypi/simple/"
    found = parse_feed_url(service)
    if found is None:
        return
    try:
        target = urllib3.util.parse_url(service)
    except (urllib3.exceptions.LocationParseError, ValueError):
        return  # the client cannot send this anywhere
    target_host = (target.host or "").lower().rstrip(".")
    assert target_host == found.host.split(":")[0]


@given(
    org=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,20}", fullmatch=True),
    name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    upload=st.booleans(),
)
def test_any_plain_org_and_feed_name_is_understood(org: str, name: str, upload: bool) -> None:
    kind = "upload" if upload else "simple"
    found = parse_feed_url(f"https://pkgs.dev.azure.com/{org}/_packaging/{name}/pypi/{kind}/")
    assert found is not None
    assert found.org == org.lower()
    assert found.feed == name
    assert found.write is upload


# ---------------------------------------------------------------- index_url

# (service string, the feed's simple index)
# fmt: off
INDEX_URLS: list[tuple[str, str]] = [
    # organisation-scoped; the organisation is lower-cased, the rest kept as given
    ("https://pkgs.dev.azure.com/Contoso/_packaging/feed/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
    ("pkgs.dev.azure.com/contoso/_packaging/Feed/pypi/simple",
     "https://pkgs.dev.azure.com/contoso/_packaging/Feed/pypi/simple/"),
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/pkg-name/",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
    ("https://u:p@pkgs.dev.azure.com:443/contoso/_packaging/feed/pypi/simple/?q=1#frag",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
    ("https://pkgs.dev.azure.com:8443/contoso/_packaging/feed/pypi/simple/",
     "https://pkgs.dev.azure.com:8443/contoso/_packaging/feed/pypi/simple/"),
    ("https://PKGS.DEV.AZURE.COM/contoso/_PACKAGING/feed/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
    # project-scoped
    ("https://pkgs.dev.azure.com/contoso/Proj/_packaging/feed/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/Proj/_packaging/feed/pypi/simple/"),
    # views
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed@Release/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed@Release/pypi/simple/"),
    ("https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Local/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Local/pypi/simple/"),
    # upload URLs probe the index of the same feed
    ("https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
    ("https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Release/pypi/upload/",
     "https://pkgs.dev.azure.com/contoso/proj/_packaging/feed@Release/pypi/simple/"),
    # download URLs name the feed by GUID
    (f"https://pkgs.dev.azure.com/contoso/_packaging/{GUID}/pypi/download/pkg/1.0/pkg-1.0.tar.gz",
     f"https://pkgs.dev.azure.com/contoso/_packaging/{GUID}/pypi/simple/"),
    (f"https://pkgs.dev.azure.com/contoso/{GUID}/_packaging/{GUID}/pypi/download/p/1/p-1.whl",
     f"https://pkgs.dev.azure.com/contoso/{GUID}/_packaging/{GUID}/pypi/simple/"),
    # legacy hosts: the organisation is the subdomain, never repeated in the path
    ("https://contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/",
     "https://contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/"),
    ("https://Contoso.pkgs.visualstudio.com/proj/_packaging/feed@Prerelease/pypi/upload/",
     "https://contoso.pkgs.visualstudio.com/proj/_packaging/feed@Prerelease/pypi/simple/"),
    ("https://pkgs.codedev.ms/contoso/_packaging/feed/pypi/simple/",
     "https://pkgs.codedev.ms/contoso/_packaging/feed/pypi/simple/"),
    # odd characters: what must be encoded stays encoded, nothing is double-encoded
    ("https://pkgs.dev.azure.com/contoso/My%20Project/_packaging/my%20feed/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/My%20Project/_packaging/my%20feed/pypi/simple/"),
    ("https://pkgs.dev.azure.com/my%20org/_packaging/feed@my%20view/pypi/simple/",
     "https://pkgs.dev.azure.com/my%20org/_packaging/feed@my%20view/pypi/simple/"),
    ("https://pkgs.dev.azure.com/contoso/Proj%20(x)/_packaging/f(1)/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/Proj%20%28x%29/_packaging/f%281%29/pypi/simple/"),
    ("https://pkgs.dev.azure.com/contoso/_packaging/my.feed_1~x-y/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/_packaging/my.feed_1~x-y/pypi/simple/"),
    ("https://pkgs.dev.azure.com/contoso/_packaging/%66eed/pypi/simple/",
     "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
]
# fmt: on


@pytest.mark.parametrize(("service", "index"), INDEX_URLS)
def test_index_url(service: str, index: str) -> None:
    found = parse_feed_url(service)
    assert found is not None
    assert found.index_url == index


@pytest.mark.parametrize(("service", "index"), INDEX_URLS)
def test_index_url_names_the_same_feed_for_reading(service: str, index: str) -> None:
    found = parse_feed_url(service)
    again = parse_feed_url(index)
    assert found is not None
    assert again is not None
    same = ("host", "org", "project", "feed", "view", "org_in_path")
    assert [getattr(again, f) for f in same] == [getattr(found, f) for f in same]
    assert again.write is False
    assert again.index_url == index


@pytest.mark.parametrize(
    ("feed", "index"),
    [
        (
            Feed("u", "localhost:8443", "contoso", None, "feed", None, False),
            "https://localhost:8443/contoso/_packaging/feed/pypi/simple/",
        ),
        (
            Feed("u", "contoso.pkgs.visualstudio.com", "contoso", None, "f", "v", True, False),
            "https://contoso.pkgs.visualstudio.com/_packaging/f@v/pypi/simple/",
        ),
        (
            Feed("u", "pkgs.dev.azure.com", "a b", "c?d", "e#f", "g%h", False),
            "https://pkgs.dev.azure.com/a%20b/c%3Fd/_packaging/e%23f@g%25h/pypi/simple/",
        ),
        (
            Feed("u", "pkgs.dev.azure.com", "o", None, "f/../x", None, False),
            "https://pkgs.dev.azure.com/o/_packaging/f%2F..%2Fx/pypi/simple/",
        ),
    ],
)
def test_index_url_of_a_feed_built_directly(feed: Feed, index: str) -> None:
    assert feed.index_url == index


# ---------------------------------------------------------------- extra_hosts

HOSTS_VAR = "ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS"


@pytest.mark.parametrize("name", EXTRA_HOSTS_VARS)
def test_each_spelling_of_the_extra_hosts_setting_is_read(name: str) -> None:
    assert extra_hosts({name: "ads.example.com"}) == ("ads.example.com",)


def test_extra_hosts_from_every_spelling_together() -> None:
    env = {
        "ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS": "a.example.com",
        "NUGET_CREDENTIALPROVIDER_VSTS_HOSTS": "b.example.com",
        "NUGET_CREDENTIALPROVIDER_HOSTS": ".c.example.com",
    }
    assert extra_hosts(env) == ("a.example.com", "b.example.com", ".c.example.com")


def test_extra_hosts_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert extra_hosts() == ()
    monkeypatch.setenv("NUGET_CREDENTIALPROVIDER_HOSTS", "ads.example.com;.corp.example")
    assert extra_hosts() == ("ads.example.com", ".corp.example")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ads.example.com", ("ads.example.com",)),
        (" Ads.Example.COM ", ("ads.example.com",)),
        ("ads.example.com.", ("ads.example.com",)),
        ("ads.example.com\n", ("ads.example.com",)),
        (".corp.example", (".corp.example",)),
        (".corp.example.", (".corp.example",)),
        ("a.example.com;b.example.com", ("a.example.com", "b.example.com")),
        ("a.example.com; ;;b.example.com;", ("a.example.com", "b.example.com")),
        ("tfs-01.corp.example", ("tfs-01.corp.example",)),
        ("xn--80ak6aa92e.com", ("xn--80ak6aa92e.com",)),
    ],
)
def test_extra_hosts_accepted(raw: str, expected: tuple[str, ...]) -> None:
    assert extra_hosts({HOSTS_VAR: raw}) == expected


EXTRA_HOSTS_JUNK = [
    "",
    " ",
    ";",
    ".",
    "..",
    "com",
    ".com",
    "localhost",
    ".localhost",
    "*",
    "*.example.com",
    ".*.example.com",
    "*example.com",
    "evil.com\\@x",
    "evil.com\\@ads.example.com",
    "user@ads.example.com",
    "ads.example.com@evil.com",
    "ads.example.com:8080",
    "https://ads.example.com",
    "ads.example.com/tfs",
    "ads.example.com?x",
    "ads.example.com#x",
    "a..b",
    "a..b.com",
    "..example.com",
    ".example..com",
    "-ads.example.com",
    "ads-.example.com",
    "ads_x.example.com",
    "ads example.com",
    "ads.example.com\x00.evil.com",
    "ads.ex%61mple.com",
    "[::1]",
    "ex\u0430mple.com",  # Cyrillic a
    "\uff45xample.com",  # fullwidth e
    "ex\u212aample.com",  # Kelvin sign: lower() would make it ASCII "exkample.com"
    "example\u3002com",  # ideographic full stop
    "a" * 64 + ".com",
]


@pytest.mark.parametrize("raw", EXTRA_HOSTS_JUNK, ids=lambda s: repr(s)[:40])
def test_extra_hosts_drop_anything_but_plain_dns_names(raw: str) -> None:
    assert extra_hosts({HOSTS_VAR: raw}) == ()


@pytest.mark.parametrize("raw", EXTRA_HOSTS_JUNK, ids=lambda s: repr(s)[:40])
def test_junk_next_to_a_good_entry_drops_only_the_junk(raw: str) -> None:
    env = {HOSTS_VAR: f"{raw};ads.example.com"}
    assert extra_hosts(env) == ("ads.example.com",)


@pytest.mark.parametrize("raw", EXTRA_HOSTS_JUNK, ids=lambda s: repr(s)[:40])
def test_a_junk_entry_never_makes_another_host_a_feed(raw: str) -> None:
    hosts = extra_hosts({HOSTS_VAR: raw})
    for host in ("evil.com", "pypi.org", "example.com", "x.evil.com", "a.b"):
        service = f"https://{host}/org/_packaging/feed/pypi/simple/"
        assert parse_feed_url(service, hosts=hosts) is None, (raw, host)


# ---------------------------------------------------------------- feeds on declared hosts

DECLARED = ("ads.example.com", ".corp.example")


# (service string, host, org, project, feed, view, write)
# fmt: off
ON_DECLARED_HOSTS: list[tuple[str, str, str, str | None, str, str | None, bool]] = [
    # Azure DevOps Server: virtual directory and collection stand for the organisation
    ("https://ads.example.com/tfs/DefaultCollection/Project1/_packaging/feed/pypi/simple/",
     "ads.example.com", "tfs/defaultcollection", "Project1", "feed", None, False),
    ("https://ads.example.com/tfs/DefaultCollection/Project1/_packaging/feed@Release/pypi/upload/",
     "ads.example.com", "tfs/defaultcollection", "Project1", "feed", "Release", True),
    ("https://ads.example.com:8443/tfs/DefaultCollection/Project1/_packaging/feed/pypi/simple/",
     "ads.example.com:8443", "tfs/defaultcollection", "Project1", "feed", None, False),
    ("https://ads.example.com/a/b/Collection/Project1/_packaging/feed/pypi/simple/",
     "ads.example.com", "a/b/collection", "Project1", "feed", None, False),
    # a collection without a virtual directory, with or without a project
    ("https://ads.example.com/DefaultCollection/Project1/_packaging/feed/pypi/simple/",
     "ads.example.com", "defaultcollection", "Project1", "feed", None, False),
    ("https://ads.example.com/DefaultCollection/_packaging/feed/pypi/simple/",
     "ads.example.com", "defaultcollection", None, "feed", None, False),
    # any subdomain of a `.suffix` entry
    ("https://tfs.corp.example/Org/_packaging/feed/pypi/simple/",
     "tfs.corp.example", "org", None, "feed", None, False),
    ("https://a.b.corp.example/Org/Proj/_packaging/feed/pypi/simple/",
     "a.b.corp.example", "org", "Proj", "feed", None, False),
    ("https://u:p@ADS.example.com./tfs/C/P/_packaging/feed/pypi/simple/?q#f",
     "ads.example.com", "tfs/c", "P", "feed", None, False),
]
# fmt: on


@pytest.mark.parametrize(
    ("service", "host", "org", "project", "name", "view", "write"), ON_DECLARED_HOSTS
)
def test_feeds_on_declared_hosts(
    service: str,
    host: str,
    org: str,
    project: str | None,
    name: str,
    view: str | None,
    write: bool,
) -> None:
    found = parse_feed_url(service, hosts=DECLARED)
    assert found is not None
    assert (found.host, found.org, found.project, found.feed, found.view, found.write) == (
        host,
        org,
        project,
        name,
        view,
        write,
    )
    assert found.org_in_path is True
    assert "@" not in urlsplit(found.url).netloc
    assert found.url.startswith(f"https://{host}/")


@pytest.mark.parametrize("service", [row[0] for row in ON_DECLARED_HOSTS])
def test_index_url_on_a_declared_host_names_the_same_feed(service: str) -> None:
    found = parse_feed_url(service, hosts=DECLARED)
    assert found is not None
    again = parse_feed_url(found.index_url, hosts=DECLARED)
    assert again is not None
    same = ("host", "org", "project", "feed", "view")
    assert [getattr(again, f) for f in same] == [getattr(found, f) for f in same]
    assert again.write is False


def test_azure_devops_server_index_url() -> None:
    found = parse_feed_url(
        "https://ads.example.com/tfs/DefaultCollection/Project1/_packaging/feed/pypi/upload/",
        hosts=DECLARED,
    )
    assert found is not None
    assert found.index_url == (
        "https://ads.example.com/tfs/defaultcollection/Project1/_packaging/feed/pypi/simple/"
    )
    assert found.label == "tfs/defaultcollection/Project1/feed"


def test_declared_hosts_come_from_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = "https://ads.example.com/tfs/DefaultCollection/P/_packaging/feed/pypi/simple/"
    assert parse_feed_url(service) is None
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS", "ads.example.com")
    found = parse_feed_url(service)
    assert found is not None
    assert found.org == "tfs/defaultcollection"


def test_declared_hosts_do_not_change_the_azure_devops_hosts() -> None:
    found = parse_feed_url(
        "https://contoso.pkgs.visualstudio.com/_packaging/feed/pypi/simple/", hosts=DECLARED
    )
    assert found is not None
    assert (found.org, found.org_in_path) == ("contoso", False)


@pytest.mark.parametrize(
    "service",
    [
        # not declared, or declared only as a suffix
        "https://other.example.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://corp.example/Org/_packaging/feed/pypi/simple/",
        "https://xcorp.example/Org/_packaging/feed/pypi/simple/",
        "https://tfs.corp.example.evil.com/Org/_packaging/feed/pypi/simple/",
        "https://ads.example.com.evil.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://xads.example.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://sub.ads.example.com/tfs/C/P/_packaging/feed/pypi/simple/",
        # the authority tricks that fail on Azure DevOps hosts fail here too
        "https://evil.com\\@ads.example.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://ads.example.com@evil.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://ads.example.com\\@evil.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://evil.com#@ads.example.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://ads.ex%61mple.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "https://ads.ex\u0430mple.com/tfs/C/P/_packaging/feed/pypi/simple/",
        "http://ads.example.com/tfs/C/P/_packaging/feed/pypi/simple/",
        # no organisation, or _packaging too deep
        "https://ads.example.com/_packaging/feed/pypi/simple/",
        "https://ads.example.com/",
        "https://ads.example.com/tfs/DefaultCollection/",
        "https://ads.example.com/a/b/c/d/e/_packaging/feed/pypi/simple/",
        # odd path segments
        "https://ads.example.com/tfs/../P/_packaging/feed/pypi/simple/",
        "https://ads.example.com/tfs/%2e%2e/P/_packaging/feed/pypi/simple/",
        "https://ads.example.com/tfs/C%0A/P/_packaging/feed/pypi/simple/",
        "https://ads.example.com/.tfs/C/P/_packaging/feed/pypi/simple/",
        "https://ads.example.com/tfs/C%2FP/_packaging/feed/pypi/simple/",
    ],
)
def test_not_feeds_on_declared_hosts(service: str) -> None:
    assert parse_feed_url(service, hosts=DECLARED) is None


# ---------------------------------------------------------------- same_feed, prefix_match

SAME = feed("https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/")


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso/proj/_packaging/feed/pypi/simple/",
        "HTTPS://PKGS.DEV.AZURE.COM/CONTOSO/PROJ/_PACKAGING/FEED/PYPI/SIMPLE/",
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple",
        "https://VssSessionToken@pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple",
        "https://user:pw@pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/nuget/v3/index.json",
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/upload/",
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed@Release/pypi/simple/",
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed@Local/nuget/v3/index.json",
        "https://pkgs.dev.azure.com:443/Contoso/Proj/_packaging/Feed/pypi/simple/",
        # not a feed URL: the official provider's URI-prefix rule
        "https://pkgs.dev.azure.com/contoso/",
        "https://pkgs.dev.azure.com/Contoso/Proj/",
        " https://pkgs.dev.azure.com/contoso/ ",
    ],
)
def test_same_feed(endpoint: str) -> None:
    assert same_feed(endpoint, SAME) is True


def test_a_view_in_the_feed_asked_for_is_ignored_too() -> None:
    viewed = feed("https://pkgs.dev.azure.com/contoso/Proj/_packaging/Feed@Prerelease/pypi/simple/")
    assert same_feed("https://pkgs.dev.azure.com/contoso/Proj/_packaging/Feed/pypi/simple/", viewed)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Other/pypi/simple/",
        "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed2/pypi/simple/",
        "https://pkgs.dev.azure.com/Fabrikam/Proj/_packaging/Feed/pypi/simple/",
        "https://pkgs.dev.azure.com/Contoso/Other/_packaging/Feed/pypi/simple/",
        "https://pkgs.dev.azure.com/Contoso/_packaging/Feed/pypi/simple/",
        "https://pkgs.codedev.ms/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "https://pkgs.dev.azure.com:8443/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "http://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "https://pkgs.dev.azure.com.evil.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "https://evil.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        "https://evil.com\\@pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/",
        # prefixes that do not lead to it
        "https://pkgs.dev.azure.com/fabrikam/",
        "http://pkgs.dev.azure.com/contoso/",
        "pkgs.dev.azure.com/contoso/",
        "https://evil.com/",
        "*",
        "",
        " ",
    ],
)
def test_not_the_same_feed(endpoint: str) -> None:
    assert same_feed(endpoint, SAME) is False


def test_same_feed_on_a_declared_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_CREDENTIALPROVIDER_VSTS_HOSTS", "ads.example.com")
    server = feed("https://ads.example.com/tfs/DefaultCollection/P/_packaging/f/pypi/simple/")
    assert same_feed("https://ads.example.com/tfs/defaultcollection/p/_packaging/F/pypi", server)
    assert not same_feed("https://ads.example.com/tfs/Other/P/_packaging/f/pypi/simple/", server)


@pytest.mark.parametrize(
    ("prefix", "matches"),
    [
        ("https://pkgs.dev.azure.com/", True),
        ("https://pkgs.dev.azure.com/contoso", True),
        ("HTTPS://PKGS.DEV.AZURE.COM/CONTOSO/", True),
        ("  https://pkgs.dev.azure.com/contoso/proj/  ", True),
        ("https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/simple/", True),
        # the index URL of an upload URL counts, as the official provider sees the index
        ("https://pkgs.dev.azure.com/contoso/proj/_packaging/feed/pypi/simple", True),
        ("https://pkgs.dev.azure.com/fabrikam/", False),
        ("https://pkgs.dev.azure.com/Contoso/Proj/_packaging/Other/", False),
        ("http://pkgs.dev.azure.com/contoso/", False),
        ("pkgs.dev.azure.com/contoso/", False),
        ("https://user@pkgs.dev.azure.com/contoso/", False),
        ("https://contoso.pkgs.visualstudio.com/", False),
        ("", False),
        (" ", False),
    ],
)
def test_prefix_match(prefix: str, matches: bool) -> None:
    upload = feed("https://user:pw@pkgs.dev.azure.com/Contoso/Proj/_packaging/Feed/pypi/upload/")
    assert prefix_match(prefix, upload) is matches


# A prefix ends where a path segment does: the official provider compares strings, so its
# `https://pkgs.dev.azure.com/contoso` hands the pipeline token to `.../contosoevil/...` too.
BOUNDARY_PREFIX = "https://pkgs.dev.azure.com/contoso"


@pytest.mark.parametrize(
    "url",
    [
        "https://pkgs.dev.azure.com/contosoevil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/CONTOSOEVIL/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso-evil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso.evil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso_evil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso~evil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso%20evil/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contoso0/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contosoevil/contoso/_packaging/feed/pypi/simple/",
        "https://pkgs.dev.azure.com/contosoevil/_packaging/feed/pypi/upload/",
        "https://user:pw@pkgs.dev.azure.com/contosoevil/_packaging/feed/pypi/simple/",
    ],
)
def test_a_prefix_never_matches_a_longer_segment(url: str) -> None:
    assert prefix_match(BOUNDARY_PREFIX, feed(url)) is False
    assert same_feed(BOUNDARY_PREFIX, feed(url)) is False


@pytest.mark.parametrize(
    ("prefix", "url"),
    [
        # the segment itself, with or without its slash, in any case
        (BOUNDARY_PREFIX, "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/"),
        (BOUNDARY_PREFIX, "https://pkgs.dev.azure.com/Contoso/Proj/_packaging/f/pypi/simple/"),
        (BOUNDARY_PREFIX + "/", "https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"),
        ("HTTPS://PKGS.DEV.AZURE.COM/CONTOSO", "https://pkgs.dev.azure.com/contoso/_packaging/f/"),
        # the host alone, with or without its slash
        ("https://pkgs.dev.azure.com", "https://pkgs.dev.azure.com/contosoevil/_packaging/f/"),
        ("https://pkgs.dev.azure.com/", "https://pkgs.dev.azure.com/contosoevil/_packaging/f/"),
        # the exact URL, and the index of an upload URL
        (
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        ),
        (
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple",
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple",
        ),
        (
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple",
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/upload/",
        ),
        (
            "https://pkgs.dev.azure.com/contoso/_packaging",
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        ),
        (
            "https://contoso.pkgs.visualstudio.com",
            "https://contoso.pkgs.visualstudio.com/_packaging/f/",
        ),
    ],
)
def test_a_prefix_matches_on_a_segment_boundary(prefix: str, url: str) -> None:
    assert prefix_match(prefix, feed(url)) is True


@pytest.mark.parametrize(
    ("prefix", "url"),
    [
        # inside a segment: the feed, the project, the host
        (
            "https://pkgs.dev.azure.com/contoso/_packaging/fe",
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        ),
        (
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/py",
            "https://pkgs.dev.azure.com/contoso/_packaging/feed/pypi/simple/",
        ),
        (
            "https://pkgs.dev.azure.com/contoso/Pro",
            "https://pkgs.dev.azure.com/contoso/Proj/_packaging/f/pypi/simple/",
        ),
        ("https://pkgs.dev.azure", "https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"),
        ("https://contoso", "https://contoso.pkgs.visualstudio.com/_packaging/f/pypi/simple/"),
        ("https://contoso.pkgs", "https://contoso.pkgs.visualstudio.com/_packaging/f/pypi/simple/"),
        ("https://pkgs.dev.azure.com:", "https://pkgs.dev.azure.com/contoso/_packaging/f/"),
        ("https:", "https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"),
        ("https://", "https://pkgs.dev.azure.com/contoso/_packaging/f/pypi/simple/"),
    ],
)
def test_a_prefix_inside_a_segment_never_matches(prefix: str, url: str) -> None:
    assert prefix_match(prefix, feed(url)) is False
