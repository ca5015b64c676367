"""The Configuration Database: the store interface, its plans, the SQLite and PostgreSQL engines."""
