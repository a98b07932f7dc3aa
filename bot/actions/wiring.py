"""The action runner a workspace uses: its routes (`actions.json`), and the demo orders
actions on its `orders.db` unless a remote action server runs the actions."""

from __future__ import annotations

from pathlib import Path

from bot.actions.backend import OrdersDatabase
from bot.actions.orders import order_actions
from bot.actions.runner import ActionRunner
from bot.settings import ActionsConfig


def workspace_runner(config: ActionsConfig, workspace: Path) -> ActionRunner | None:
    """None when there is nothing to run the actions with (no server, no orders.db)."""
    if config.server_url is not None:
        return ActionRunner(config)
    db = workspace / "orders.db"
    if not db.is_file():
        return None
    return ActionRunner(config, order_actions(OrdersDatabase(db)))
