"""Kafka I/O for streamdrift: the worker, validation at the boundary, publishing, checkpoints."""
