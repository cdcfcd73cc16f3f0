"""Decoding: pgoutput messages, tuples, the type map and the text → Arrow converters. Imports no other room."""
