"""Graph transforms (quantize, width, fold_batchnorm): each returns a new Graph and never mutates its input.

``fold.py`` folds each BatchNorm into the Linear before it (for firmware export). The quantize and width
pass packages are laid out alike: ``pass_.py`` holds the registered pass (``@register_pass``, its entry
in :data:`netcarve.config.pass_registry.PASSES`), ``plan.py`` resolves the config's entries per node with
the one resolver of :mod:`.resolve` (default < type < name), and :mod:`.replay` re-applies a stored
transform list.
"""
