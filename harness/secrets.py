"""Secrets are never written: the one place that masks passwords in URLs, libpq strings and text.

Every message, report parameter, log attachment and terminal line that may carry a URL or a
driver's error goes through :func:`mask_url` or :func:`mask_text`. Forms covered:

- ``scheme://user:PASSWORD@host`` (any scheme: ``postgresql://``, ``http://`` pushgateways, ...),
  also when the URL is malformed (``postgresql//u:pw@h``, an unclosed ``[``) and quoted inside a
  driver message;
- query parameters and libpq ``key=value`` pairs named like a secret
  (``?password=…``, ``&sslpassword=…``, ``password='…'``, ``token: …``);
- any *known* secret anywhere (:func:`register`): the passwords of the URLs the user gave and of
  the servers the harness made are registered as they are parsed, so a driver quoting just the
  raw token (``invalid percent-encoded token: "…"``) is masked too.

The registry of known secrets is process-wide on purpose (like a logging filter): a secret seen
once must be masked wherever it turns up later. Values shorter than 4 characters are not
registered (they would mangle ordinary words); the pattern rules still mask them in their forms.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
#: parameter names whose values are secrets (case-insensitive; also as a suffix: ``sslpassword``)
SECRET_KEYS = ("password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "access_key",
               "secret_key", "credentials")
MIN_REGISTERED = 4

_known: set[str] = set()

_KEYS = "|".join(SECRET_KEYS)
#: ``key=value`` / ``key: value`` with a secret key; the value is quoted or runs to a delimiter
_PAIR = re.compile(
    rf"""(?ix)
    (?P<key>\b\w*(?:{_KEYS})\w*)          # password, sslpassword, PGPASSWORD, api_key ...
    (?P<sep>\s*(?:=|:(?!//))\s*)          # = or : (but not the :// of a URL)
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,'"<>)\]}}]+)
    """)
#: a URL-looking token (possibly malformed: ``postgresql//``), up to whitespace or a quote
_URL = re.compile(r"""(?i)\b[a-z][a-z0-9+.\-]*:?//[^\s'"<>`]+""")


def register(*values: str | None) -> None:
    """Remember secrets so :func:`mask_text` masks them wherever they appear (raw and %-forms)."""
    for value in values:
        if not value:
            continue
        for form in {value, unquote(value), quote(value, safe=""), quote(unquote(value), safe="")}:
            if len(form) >= MIN_REGISTERED:
                _known.add(form)


def register_url(url: str | None) -> None:
    """Register the password of ``url`` (userinfo and secret query parameters); never raises."""
    if not url:
        return
    userinfo = _userinfo(url)
    if userinfo and ":" in userinfo:
        register(userinfo.split(":", 1)[1])
    query = url.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if sep and _is_secret_key(key):
            register(value)


def known() -> frozenset[str]:
    """The registered secrets (for tests)."""
    return frozenset(_known)


def mask_url(url: str) -> str:
    """``url`` with its password (userinfo and secret query parameters) replaced by ``***``.

    Never raises, whatever the URL looks like (a malformed one is masked as text).
    """
    if not isinstance(url, str):
        url = str(url)
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = parts.netloc.rsplit("@", 1)
            user = netloc[0].split(":", 1)[0]
            parts = parts._replace(netloc=f"{user}:{MASK}@{netloc[1]}")
        if parts.query:
            pairs = []
            for part in parts.query.split("&"):
                key, sep, value = part.partition("=")
                pairs.append(f"{key}={MASK}" if sep and _is_secret_key(unquote(key)) else part)
            parts = parts._replace(query="&".join(pairs))
        masked = parts.geturl()
    except ValueError:  # e.g. an unclosed '[' in the host
        masked = url
    return mask_text(masked)


def mask_text(text: str) -> str:
    """Mask every secret in free text: URL passwords, ``key=value`` secrets, known secrets."""
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return text
    text = _URL.sub(_mask_url_token, text)
    text = _PAIR.sub(_mask_pair, text)
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def one_line(exc: BaseException | str) -> str:
    """A masked, single-line message for an exception (its type when it says nothing)."""
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    return mask_text(" ".join(line.strip() for line in text.strip().splitlines() if line.strip()))


# -- helpers ----------------------------------------------------------------------------------
def _is_secret_key(key: str) -> bool:
    key = key.strip().lower()
    return any(word in key for word in SECRET_KEYS)


def _userinfo(url: str) -> str | None:
    """The ``user:password`` part of a (possibly malformed) URL, or None."""
    rest = url.split("//", 1)[1] if "//" in url else url
    authority = re.split(r"[?#]", rest, maxsplit=1)[0]
    if "@" not in authority:
        return None
    return authority.rsplit("@", 1)[0]


def _mask_url_token(match: re.Match[str]) -> str:
    token = match.group(0)
    userinfo = _userinfo(token)
    if userinfo and ":" in userinfo:
        head, rest = token.split("//", 1)
        user = userinfo.split(":", 1)[0]
        token = f"{head}//{user}:{MASK}@{rest[len(userinfo) + 1:]}"
    return token


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if value.strip("'\"") in ("", MASK):
        return match.group(0)
    quote_char = value[0] if value[0] in "'\"" else ""
    return f"{match.group('key')}{match.group('sep')}{quote_char}{MASK}{quote_char}"
