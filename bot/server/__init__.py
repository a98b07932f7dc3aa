"""csbot over HTTP: a FastAPI app (`create_app`) with a REST API, SSE streaming of
replies, a Rasa-compatible REST channel and the website widget's files.

Importing this package loads no model: `create_app` is cheap and the models load in the
app's lifespan, on the inference workers' threads (see `bot.server.inference`).
"""
