"""Adapters: configuration, the event store, view tables, Kafka."""
