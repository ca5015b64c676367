"""The configuration held in memory by a running server: the one write path and change fan-out."""
