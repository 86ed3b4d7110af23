"""Run one service: `python -m runtime.serve intake` (settings from FANGPIN_ variables)."""
from __future__ import annotations

import logging
import sys

import uvicorn

from runtime.app import create_app, load_definition
from runtime.settings import Settings


def serve(service: str, settings: Settings | None = None) -> None:
    settings = settings or Settings(service=service)
    logging.basicConfig(level=settings.log_level.upper(), format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
    app = create_app(load_definition(service), settings)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level=settings.log_level, access_log=False)


if __name__ == "__main__":
    serve(sys.argv[1])
