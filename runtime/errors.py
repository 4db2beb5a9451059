"""Domain errors: what went wrong in the language of the business, free of any transport.

The gRPC adapter (`grpc_errors.py`) maps each class to one status code, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error a caller is meant to see."""


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgumentError(DomainError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {summary}")


class NotFoundError(DomainError):
    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class AlreadyExistsError(DomainError):
    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} already exists")


class FailedPreconditionError(DomainError):
    """The request is valid but the state does not allow it; `reason` is a stable code and
    `metadata` short machine-readable facts about it (ErrorInfo metadata on the wire)."""

    def __init__(self, reason: str, message: str, metadata: dict[str, str] | None = None) -> None:
        self.reason = reason
        self.metadata = dict(metadata or {})
        super().__init__(message)


class ConcurrencyConflictError(DomainError):
    """Another writer changed the aggregate first; retry against the new version."""

    def __init__(self, stream: str, expected_version: int, actual_version: int) -> None:
        self.stream = stream
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"{stream} is at version {actual_version}, not the expected {expected_version}"
        )


DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
"""The usual reason of a DependencyUnavailableError (its ErrorInfo reason on the wire)."""


class DependencyUnavailableError(DomainError):
    """A service this one depends on could not answer in time, or its breaker is open.
    `reason` is a stable code for callers that must tell kinds of unavailability apart."""

    def __init__(self, dependency: str, message: str, reason: str = DEPENDENCY_UNAVAILABLE) -> None:
        self.dependency = dependency
        self.reason = reason
        super().__init__(message)


class UnauthenticatedError(DomainError):
    """The call does not say who the customer is."""


class PermissionDeniedError(DomainError):
    """The caller is known but lacks the role this operation needs."""

    def __init__(self, role: str) -> None:
        self.role = role
        super().__init__(f"this operation needs the {role!r} role")
