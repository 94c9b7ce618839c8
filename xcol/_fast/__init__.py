"""xcol's Cython core: decoders, books and the per-venue engine."""
