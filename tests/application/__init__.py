"""Application tests: a service's use cases in-process on a temporary database."""
