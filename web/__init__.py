"""HTTP for the node: health, metrics, an admin API and the event stream over WebSocket.

Not built yet: the layout reserves its place (it sits at the top layer, beside cli).
"""
