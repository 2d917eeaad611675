"""The ``tether`` command.

Admin commands (serve, migrate, worker, users, keys) act on the local configuration;
data commands (datasets, import, export, rows, schema) talk to a server through
``TETHER_URL`` / ``TETHER_API_KEY``.
"""

from __future__ import annotations

import typer

from tether.cli import admin, data

app = typer.Typer(
    help="tether: label data where it lives.", no_args_is_help=True, pretty_exceptions_enable=False
)
admin.register(app)
data.register(app)


def main() -> None:
    app()
