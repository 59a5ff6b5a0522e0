"""What recipes may name: registered stages (``manifests.registry.STAGES``) and column inspectors.

Why one resolver: a recipe is data. ``uses: tokenize`` (or the stage's full ``module:Class``) resolves
only to a class registered in our stage folders; anything else is refused with the known names and the
closest match, before a worker starts.
"""
from __future__ import annotations

from typing import Any

from ..manifests.registry import STAGES, UnknownName

# column present in a table -> "module:function(table, console)" that `slmfactory inspect` calls
INSPECTORS: dict[str, str] = {
    "units": "slmfactory.tokenize.inspect:describe",
    "tokens": "slmfactory.stages.inspect:describe",
    "messages": "slmfactory.synth.inspect:describe",
}


def stage_name(name: str) -> str:
    """The registered short name for ``name`` (a short name or its exact ``module:Class``), without importing
    the stage: the recipe loader checks every ``uses`` this way before Ray starts or a model loads."""
    if ":" in name:
        by_target = {e.target: e.name for e in STAGES.entries().values()}
        if name not in by_target:
            raise UnknownName(f"{name!r} is not a registered stage class; recipes may name only registered "
                              f"stages: {', '.join(STAGES.names())}")
        return by_target[name]
    return STAGES.entry(name).name


def resolve(name: str) -> Any:
    """A registered stage name, or its exact ``module:Class`` -> the class. Raises with the known names."""
    return STAGES.load(stage_name(name))
