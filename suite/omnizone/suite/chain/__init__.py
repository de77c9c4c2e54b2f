"""A retail chain on one machine: NATS cluster, PostgreSQL, workers, an API node.

See docs/scaling.md."""
