"""Firmware export: the fixed-point program of a quantized graph, its exact reference, and the alkaid and
hls4ml backends that turn it into bit-exact logic (``netcarve export``)."""
