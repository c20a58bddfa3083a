"""Simulators on free local ports, stopped after each test, and clients that are closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.simulators import BackgroundSimulator, Dialect, SimulatorSettings
from tests.simulators.helpers import Control, Dvclt, IGate, OpenCps

StartSimulator = Callable[..., BackgroundSimulator]


@pytest.fixture
def start() -> Iterator[StartSimulator]:
    """``start("igate", dossiers=40, ties=True)``: a running simulator (stopped after the
    test) with those settings."""
    running: list[BackgroundSimulator] = []

    def run(dialect: Dialect, **settings: Any) -> BackgroundSimulator:
        simulator = BackgroundSimulator(dialect, SimulatorSettings(**settings)).start()
        running.append(simulator)
        return simulator

    yield run
    for simulator in running:
        simulator.stop()


class Clients:
    """Makes clients and closes them after the test (warnings are errors)."""

    def __init__(self) -> None:
        self.made: list[Control | OpenCps | IGate | Dvclt] = []

    def control(self, simulator: BackgroundSimulator) -> Control:
        client = Control(simulator.url)
        self.made.append(client)
        return client

    def opencps(self, simulator: BackgroundSimulator, **kwargs: str) -> OpenCps:
        client = OpenCps(simulator.url, **kwargs)
        self.made.append(client)
        return client

    def igate(self, simulator: BackgroundSimulator) -> IGate:
        client = IGate(simulator.url)
        self.made.append(client)
        return client

    def dvclt(self, simulator: BackgroundSimulator) -> Dvclt:
        client = Dvclt(simulator.url)
        self.made.append(client)
        return client


@pytest.fixture
def clients() -> Iterator[Clients]:
    made = Clients()
    yield made
    for client in made.made:
        client.close()
