"""Source-system simulators (source-dialects.md): OpenCPS, iGate and the DVCLT queue over
HTTP, backed by a deterministic world of dossiers. A separate application, like the mock
portal: the service never imports it."""

from app.simulators.server import BackgroundSimulator, create_simulator_app, serve
from app.simulators.settings import DIALECTS, Dialect, SimulatorSettings
from app.simulators.world import World

__all__ = [
    "DIALECTS",
    "BackgroundSimulator",
    "Dialect",
    "SimulatorSettings",
    "World",
    "create_simulator_app",
    "serve",
]
