"""``cfgctl``: bootstrap, export and import, and the administrator's command line."""
