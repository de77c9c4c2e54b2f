"""The omnizone server: ingest gateway messages, place shoppers in zones, record
visits and dwell, and answer the API.

The ``domain`` package is pure; ``service`` holds the use cases; ``adapters``
(database, MQTT) and ``entrypoints`` (HTTP API, runtime, CLI) are thin shells.
"""
