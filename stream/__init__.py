"""Kafka I/O for streamdrift: the worker, validation at the boundary, publishing, checkpoints."""

if __name__ != "streamdrift.stream":
    # This folder is installed as streamdrift.stream. Imported by its folder name, it would be a
    # second copy of every class, and ``isinstance`` / ``type(...) is`` checks fail across the two.
    raise ImportError(f"this package is streamdrift.stream, not {__name__!r}: "
                      "import it as `from streamdrift.stream import ...`")

