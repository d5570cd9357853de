"""Acts: what parties, the secretariat and the hub sign and log, and the state they build.

Pure: bytes and values in, values out. The hub (an edge) feeds it log entries in order.
"""
