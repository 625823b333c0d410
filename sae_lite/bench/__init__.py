"""The benchmark: training steps against the encoder matmul and a peer (`bench`); the peer's own
script (`peer`), run in the peer's environment. Beside the command line; nothing imports it but it."""
