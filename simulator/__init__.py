"""numfab.simulator: not built yet (see the open issues); nothing is exported."""

__all__: list[str] = []
