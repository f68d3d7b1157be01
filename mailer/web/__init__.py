"""Web faces of the engine (partner submission; later admin, archive, API): thin shells."""
