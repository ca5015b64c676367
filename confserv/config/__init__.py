"""Configuration files: the Genesys file format, the settings, the pair's shared options."""
