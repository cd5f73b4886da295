# -*- test-case-name: tests.unit.test_policy -*-
"""Where a policy is served and how its HTTP answer is typed and sized
(RFC 8461 §3.2-3.3, spec B1, B10-B12)."""

from __future__ import annotations

__all__ = ["MAX_POLICY_BYTES", "policy_url", "split_content_type"]

#: B12: the size limit RFC 8461 suggests for a policy body.
MAX_POLICY_BYTES = 64 * 1024


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
