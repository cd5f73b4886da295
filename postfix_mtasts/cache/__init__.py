"""Stores behind the memory cache: the LRU itself, SQLite and Redis."""
