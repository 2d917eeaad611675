"""Storage backends behind one protocol (``base.Storage``), one module each, named in
``registry.BACKENDS``."""
