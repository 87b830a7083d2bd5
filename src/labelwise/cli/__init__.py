"""The `labelwise` command: thin; parses arguments, calls services, prints."""

from labelwise.cli.app import main

__all__ = ["main"]
