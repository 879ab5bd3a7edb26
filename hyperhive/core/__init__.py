"""The daemon core: actors, the broker and the stores they own."""
