"""The API's routers, one per concern: health, conversations (messages, streaming,
history, live events), feedback (ratings and CSAT), rasa (the Rasa REST channel) and
widget (the widget's files and /demo)."""
