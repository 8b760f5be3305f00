"""Helpers shared by the tests: processes we start and the fake upstream."""
