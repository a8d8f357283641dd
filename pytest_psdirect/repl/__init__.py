"""``psdirect shell``: the interactive console (``console``) and its sans-IO state (``state``)."""
