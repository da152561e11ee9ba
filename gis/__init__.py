"""wangge: geospatial grid management for Chinese city subdistricts."""

__version__ = "0.1.0"
