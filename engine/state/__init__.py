"""The Redis state store: table phases, checkpoint cache, published status; the key scheme in keys.py."""
