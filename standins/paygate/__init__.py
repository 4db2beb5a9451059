"""PayGate stand-in: the local payment provider, a separate process whose behaviour tests change
at run time (slow, failing, flapping, declining). It is not built on Concord's platform on
purpose: it plays an external party that knows nothing of Concord."""
