"""Configuration objects and their pure rules, and Person password hashing."""
