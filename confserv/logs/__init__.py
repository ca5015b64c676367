"""The operator's event log: its line format and the Configuration Server's event ids."""
