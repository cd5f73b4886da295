"""Read a TLS policy value the way Postfix's smtp(8) does (spec G18).

``smtp_tls_policy.c`` splits the value with ``mystrtokq(&cp, ", \\t\\r\\n",
"{}")`` (separators outside braces end a token; braces nest), takes the
first token as the level, unwraps a token that starts with ``{`` with
``extpar(..., EXTPAR_FLAG_STRIP)`` and splits each attribute with
``split_nameval``.  The policy target uses this to prove that nothing in a
policy body can add, drop or change an attribute of the reply.
"""

from __future__ import annotations

__all__ = ["PolicyValueError", "read_policy_value"]

_SEPARATORS = ", \t\r\n"
_SPACE = " \t\r\n\v\f"


class PolicyValueError(ValueError):
    """Postfix would refuse the value: a syntax error in an attribute."""


def read_policy_value(value: str) -> tuple[str, list[tuple[str, str]]]:
    """The level and the ``(name, value)`` attributes Postfix reads in ``value``."""
    tokens = _tokens(value)
    if not tokens:
        raise PolicyValueError("empty policy value")
    return tokens[0], [_name_value(token) for token in tokens[1:]]


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        if text[pos] in _SEPARATORS:
            pos += 1
            continue
        start, level = pos, 0
        while pos < end and (level or text[pos] not in _SEPARATORS):
            level += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        tokens.append(text[start:pos])
    return tokens


def _name_value(token: str) -> tuple[str, str]:
    if token.startswith("{"):
        if not token.endswith("}") or _unbalanced(token):
            raise PolicyValueError(f"unbalanced braces in {token!r}")
        token = token[1:-1].strip(_SPACE)
    name, equals, value = token.partition("=")
    if not equals:
        raise PolicyValueError(f"missing '=' in {token!r}")
    return name.strip(_SPACE), value.strip(_SPACE)


def _unbalanced(token: str) -> bool:
    level = 0
    for pos, char in enumerate(token):
        level += {"{": 1, "}": -1}.get(char, 0)
        if level == 0 and pos != len(token) - 1:
            return True  # text after the brace that closes the first one
    return level != 0
