"""What the rooms that watch pipelines (status, monitoring) may ask of whatever runs them.

The runtime's :class:`~engine.runtime.manager.Manager` is the one implementation. Watchers type
against this protocol, so they never import the runtime that hosts them (the one-way doors of
ARCHITECTURE.md): the runtime starts the watchers and hands itself in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from engine.config.models import PipelineSpec
from engine.errors import EtlError
from engine.pipeline.activity import PipelineActivity, RunnerEvent

if TYPE_CHECKING:  # the runner imports most of the engine; watchers only need its type here
    from engine.pipeline.runner import PipelineRunner


class PipelineHost(Protocol):
    @property
    def runners(self) -> Mapping[int, PipelineRunner]:
        """The running runners by pipeline id (a copy: safe to iterate from any thread)."""
        ...

    @property
    def last_reconcile(self) -> float:
        """When the host last compared the configuration with what runs (epoch seconds)."""
        ...

    @property
    def config_error(self) -> EtlError | None:
        """Why the host cannot read the configuration right now, if it cannot."""
        ...

    def running_specs(self) -> Mapping[int, PipelineSpec]:
        """The definition each running runner was started with, by pipeline id."""
        ...

    def activity(self, pipeline_id: int) -> PipelineActivity | None:
        """What the pipeline did in this process, across runner restarts (None: never ran)."""
        ...

    def add_listener(self, listener: Callable[[RunnerEvent], None]) -> None:
        """Also send every runner event to ``listener``, from the runner's thread."""
        ...

    def remove_listener(self, listener: Callable[[RunnerEvent], None]) -> None: ...
