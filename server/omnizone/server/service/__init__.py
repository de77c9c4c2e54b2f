"""Use cases over the domain core; storage is reached through ``ports``."""
