"""One pipeline: the runner thread in phases (session, slot, copy, stream, apply), schema changes, what it reports."""
