"""What the endpoints share: the running :class:`~app.runtime.Service` of the process."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.runtime import Service


def service_of(request: Request) -> Service:
    """The process's service, put on ``app.state`` by the lifespan (or the worker)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(service_of)]
