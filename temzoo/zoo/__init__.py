"""The model zoo: checkpoint format (Hub layout + temzoo.json), registry, sources and loading."""

from temzoo.zoo.sources import load_model

__all__ = ["load_model"]
