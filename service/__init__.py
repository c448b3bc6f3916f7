"""Earnwatch: an earnings-event alerting daemon."""

__version__ = "0.1.0"
