"""Exchange simulator: Binance, OKX and Deribit protocols on loopback (``xcol sim``).

See ``docs/sim.md``.  :class:`Simulator` is the in-process control API.
"""

from xcol.sim.server import LineConfig, LineStats, SimConfig, Simulator, line_configs

__all__ = ["LineConfig", "LineStats", "SimConfig", "Simulator", "line_configs"]
