"""Turning the URIs rows keep into something a browser can load."""
