"""How the server is driven: the HTTP API (and, beside it, runtime and CLI)."""
