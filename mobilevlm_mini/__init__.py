"""mobilevlm-mini: a tiny, trainable MobileVLM built from scratch, one lesson at a time."""

__version__ = "0.1.0"
