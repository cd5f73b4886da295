# -*- test-case-name: tests.unit.test_policy -*-
"""Where a policy is served and how its HTTP answer is typed and sized
(RFC 8461 §3.2-3.3, spec B1, B10-B12)."""

from __future__ import annotations

__all__ = [
    "MAX_POLICY_BYTES",
    "MAX_RESPONSE_HEADER_BYTES",
    "MAX_RESPONSE_HEADER_LINES",
    "MAX_RESPONSE_HEADER_LINE_BYTES",
    "policy_url",
    "split_content_type",
]

#: B12: the size limit RFC 8461 suggests for a policy body.
MAX_POLICY_BYTES = 64 * 1024

# B12 carried over to the response head, which RFC 8461 does not bound.
# The status line, every header line and the blank line that ends them, with
# their line ends; interim 1xx responses count towards the final one's bounds.
MAX_RESPONSE_HEADER_BYTES = 32 * 1024
# Header lines (continuation lines included), not counting the status line
# and the blank line.
MAX_RESPONSE_HEADER_LINES = 100
# One line with its line end.  Below Twisted's own line limit (16 KiB), which
# drops the connection without saying why.
MAX_RESPONSE_HEADER_LINE_BYTES = 8 * 1024


def split_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """A Content-Type header as ``(media type, parameters)`` (spec B10, B11).

    The media type and parameter names are lower-cased, values unquoted;
    ``("", {})`` when the header is missing or empty.
    """
    media_type, *params = (value or "").split(";")
    parsed: dict[str, str] = {}
    for param in params:
        name, _, param_value = param.partition("=")
        if name.strip():
            parsed.setdefault(name.strip().lower(), param_value.strip().strip('"'))
    return media_type.strip().lower(), parsed


def policy_url(domain: str) -> str:
    """The one URL a policy is fetched from (B1)."""
    return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"
