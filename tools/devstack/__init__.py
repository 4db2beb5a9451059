"""Starts and stops Concord's processes: used by `make up`/`make down` and by the test fixtures."""
