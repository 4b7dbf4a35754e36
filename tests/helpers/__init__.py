"""Fakes and helpers shared by the tests (STYLE.md: shared helpers live in tests/helpers/)."""
