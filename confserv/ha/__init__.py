"""High availability: the role machine, pair membership, the pair driver and the database watch."""
