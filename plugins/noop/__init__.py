"""The no-op test plugin."""
