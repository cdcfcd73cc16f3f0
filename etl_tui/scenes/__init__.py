"""Deterministic scenes for the console: the snapshot and pilot tests, and the README's screenshots
(``python -m etl_tui.screenshots``), so the images always show the UI as tested.

Four pipelines cover what an operator meets: one streaming, one copying, one retrying on a timer
with an errored table, one whose slot was lost. ``clock`` holds the fixed moment they are drawn
at; ``board``, ``config``, ``redis_keys`` and ``checks`` what each screen shows; ``backend`` serves
them to the app.
"""
