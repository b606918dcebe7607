"""`onepass study`: does one model beat four, and which architecture and balancer gets it there.

The stage after bench: it may import train, export, runtime and bench; nothing imports it.
config (the YAML, validated whole) -> data (rendered once) -> runs (each a normal `onepass train`,
locally or one Ray task each) -> results -> latency (one process, interleaved) -> report + plots.
"""
