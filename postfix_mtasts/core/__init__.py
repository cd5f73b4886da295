"""The pure core: parsers, codecs, the cache entry and every decision.

Nothing here does I/O, reads a clock or imports Twisted; the import
contract in setup.cfg forbids it for the whole package, so a new module
placed here is covered without anyone editing a list.
"""
