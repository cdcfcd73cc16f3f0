"""Pure formatting: status board values → the strings, rows and tones the console shows.

Nothing here imports Textual or touches the network, so every label an operator reads (bytes,
durations, countdowns, ETAs, phases, colours) is decided in one place and unit-tested with plain
asserts. Widgets only map a :class:`~etl_tui.presenters.cells.Tone` to a style.

One module per screen (``pipelines``, ``detail``, ``throughput``, ``slots``, ``alerts``, ``events``,
``redis_keys``, ``config``, ``forms``, ``checks``, ``header``) over a few shared ones: ``cells``
(tones, cells, rows, the `/` filter), ``units`` (numbers, sizes, durations), ``charts``
(sparklines, bars, ticks), ``phases``, ``lag``, ``retries`` and ``failure``.
"""
