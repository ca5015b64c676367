"""The Configuration Server: configuration file, object model, stores, roles, proxy, client.

Imports ``addp``; never imports ``scs``.
"""
