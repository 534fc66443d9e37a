"""streamdrift: drift detection for the feature events a deployed ML model sees."""

__version__ = "0.1.0"
