"""The command palette (ctrl+p): every screen, and every action of the current screen, with its key.
Built from the key table, so it lists exactly what the footer and `?` do."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from etl_tui.bindings import SCREENS, KeySpec, global_keys, screen_keys
from etl_tui.console import Console


class EtlCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        etl = cast("Console", self.app)
        screen = self.screen
        scope = str(getattr(screen, "SCOPE", ""))
        out: list[tuple[str, str, Callable[[], object]]] = [
            (f"Go to {s.title} ({s.key})", s.help, partial(etl.show_screen, s.name)) for s in SCREENS
        ]
        specs: list[KeySpec] = screen_keys(scope) if scope else []
        for spec in specs + global_keys():
            if spec.mutating and etl.readonly:
                continue
            target = screen if spec in specs else self.app
            out.append((f"{spec.label} ({spec.display})", spec.help, partial(target.run_action, spec.action)))
        return out

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            score = matcher.match(f"{title} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, text=title, help=help_text)
