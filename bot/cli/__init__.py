"""The `csbot` command line: assembles the Typer app from one module per command group.

Each command checks its flags and calls one library function; typed errors from below
become one-line messages and a non-zero exit (bot.cli.console), here and nowhere else.
Importing this package loads no torch, transformers or FAISS: the models load when a
command needs them.
"""

from __future__ import annotations

import typer

from bot.cli.assistant import ask, build, chat, import_
from bot.cli.db import db_app
from bot.cli.evaluate import bench_app, eval_app
from bot.cli.finetune import finetune_app
from bot.cli.models import models_app
from bot.cli.privacy import forget, purge
from bot.cli.report import report
from bot.cli.serve import serve
from bot.cli.users import users_app

app = typer.Typer(
    help="csbot: a customer-service assistant with intents, retrieval and a grounded composer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(build)
app.command()(ask)
app.command()(chat)
app.command()(serve)
app.command()(forget)
app.command()(purge)
app.command()(report)
app.command("import")(import_)
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")
app.add_typer(finetune_app, name="finetune")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")

__all__ = ["app"]
