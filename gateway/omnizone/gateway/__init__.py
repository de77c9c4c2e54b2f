"""The edge gateway: reader drivers → normalize → aggregate → durable outbox → MQTT."""

__version__ = "0.1.0"
