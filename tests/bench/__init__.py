"""The holds benchmark (`./dev bench`, `python -m tests.bench`): figures, never assertions."""
