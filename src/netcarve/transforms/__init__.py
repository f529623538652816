"""Graph transforms (quantize, width): each returns a new Graph and never mutates its input."""
