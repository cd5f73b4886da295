# -*- test-case-name: tests.unit.test_checker_rules -*-
"""``postfix-mtasts check DOMAIN``: the domain owner's checker (spec H).

Pure parts: :mod:`.facts` (what was observed), :mod:`.model` (checks and
verdicts), :mod:`.tlsrpt` and the ``rules*`` modules (facts in, checks out),
:mod:`.suggest` and :mod:`.report`.  Adapters: :mod:`.probe` (SMTP STARTTLS
and TLS handshakes), :mod:`.names` (host names through our DNS client) and
:mod:`.gather` (collects the facts).  ``cli/check.py`` wires them.
"""

__all__: list[str] = []
