"""Notification channels: one module per channel type, registered in NOTIFIERS."""
