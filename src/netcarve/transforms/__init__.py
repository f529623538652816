"""Graph transforms (quantize, width): each returns a new Graph and never mutates its input.

Both pass packages are laid out alike: ``pass_.py`` holds the registered pass (``@register_pass``, its entry
in :data:`netcarve.config.pass_registry.PASSES`), ``plan.py`` resolves the config's entries per node with
the one resolver of :mod:`.resolve` (default < type < name), and :mod:`.replay` re-applies a stored
transform list.
"""
