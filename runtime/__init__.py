"""The platform every Concord service is built on: bootstrap, settings, logs, errors, the
SQLite database, the JetStream bus, the transactional outbox and idempotent consumers."""
