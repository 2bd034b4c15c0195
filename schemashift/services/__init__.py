"""One module per command, over a `Project`."""
