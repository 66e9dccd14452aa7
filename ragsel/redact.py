"""Credentials out of everything ragsel shows: one helper for URLs, one for any text.

``redact_url("ftp://u:KEY@host/v1?api_key=K")`` -> ``"ftp://host/v1"`` (user, password and
query string all dropped: each may carry a credential). ``redact_text`` finds URLs inside a
message (an error naming an endpoint, a log line) and blanks their user-info and the values of
credential-like query parameters, leaving the rest readable.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@'\"<>]+@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|secret|password|passwd|pwd|sig|"
    r"signature|auth|credential)s?=)[^&#\s'\"<>]+"
)


def redact_url(url: str) -> str:
    """``url`` without user:password and query string (both may carry credentials)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
    except ValueError:  # not a URL we can split (a bad port...): redact as text
        return redact_text(url)
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def redact_text(text: str) -> str:
    """``text`` with the user-info of every URL and credential query values replaced."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(r"\1<redacted>@", text)
    return _SECRET_PARAM.sub(r"\1<redacted>", text)
