"""Stand-ins for the outside parties Concord talks to (PayGate, the payment provider): real
processes with the protocols of the real thing, for `make up` and the tests, never deployed."""
