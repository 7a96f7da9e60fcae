"""Durable state: the SQLite write-ahead journal and its schema."""
