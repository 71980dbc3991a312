"""The GPU queue: the pueue adapter and the labelled eval jobs behind the smoke gate."""
