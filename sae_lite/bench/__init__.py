"""The benchmark: training steps against the encoder matmul and the peers (`bench`); each peer's own
script (`peer_overcomplete`, `peer_sparsify`, `peer_saelens`), run in the peer's environment. Beside
the command line; nothing imports it but it."""
