"""Read models built from the event log: each declares its events, owns its tables and queries."""
