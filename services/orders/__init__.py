"""Orders: the event-sourced order aggregate and the place-order saga."""
