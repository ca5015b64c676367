"""The wire: application messages, errors with their wire codes, and the challenge-response."""
