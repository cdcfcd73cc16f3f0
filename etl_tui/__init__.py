"""The command line (cli.py) and the Textual console that hosts the engine."""
