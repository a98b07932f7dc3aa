"""Business actions: rasa-sdk `Action`s that look things up (orders, returns, refunds) for a
task turn, run in process or on a remote Rasa action server.

Importing this package stays light; rasa-sdk loads with `bot.actions.orders` and
`bot.actions.runner`, which the workspace imports only when it has actions to run.
"""
