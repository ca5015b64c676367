"""The server process: the client and management ports, the proxy, start-up and the command line."""
