"""The client library: sessions and the resilient client.

Imports neither the server nor the store.
"""
