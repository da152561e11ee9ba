"""Grid cells: codes, validation, import, versions, generation, communities and workers."""
