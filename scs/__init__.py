"""The Solution Control Server: supervises Configuration Server pairs and proxies.

Imports ``confserv`` and ``addp``; nothing imports it.
"""
