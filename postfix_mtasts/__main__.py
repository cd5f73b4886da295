# -*- test-case-name: tests.unit.test_cli -*-
"""``python -m postfix_mtasts`` is the ``postfix-mtasts`` command."""

from postfix_mtasts.cli import main

raise SystemExit(main())
