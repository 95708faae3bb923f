"""The model zoo: checkpoint format (Hub layout + temzoo.json), registry, sources and loading."""
