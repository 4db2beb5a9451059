"""Certificates for mutual TLS between Concord's processes (docs/deploy.md#certificates)."""
