"""The pure trust core: Merkle trees, signed notes, checkpoints, DSSE envelopes.

Bytes in, values out. Nothing in this package opens a file, a socket or a database, or
reads the clock except where a caller explicitly lets it (``note.new_cosigner`` without a
timestamp).
"""
