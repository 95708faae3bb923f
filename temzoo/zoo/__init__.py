"""The model zoo: checkpoint format (Hub layout + temzoo.json), registry, sources and loading."""

from temzoo.zoo.sources import list_models, load_model

__all__ = ["list_models", "load_model"]
