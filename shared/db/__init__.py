"""Database tables, engine and migrations."""
