"""The HTTP API (FastAPI). Routes parse, authorize, call one service function, render."""
