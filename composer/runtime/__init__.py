"""How work runs: supervised threads with one stop event, bounded queues, buffer pools, and the tracer's spans."""
