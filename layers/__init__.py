"""The map layer catalogue: every layer defined once, rendered to the map page and the API."""

from layers.catalogue import CATALOGUE, Layer, Style, get_layer

__all__ = ["CATALOGUE", "Layer", "Style", "get_layer"]
