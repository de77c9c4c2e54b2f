"""Thin adapters to the outside world: database and MQTT."""
