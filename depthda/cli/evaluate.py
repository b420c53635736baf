"""`depthda eval ...`: evaluation against published protocols."""

from __future__ import annotations

import typer

eval_app = typer.Typer(help="Evaluate depth predictions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
