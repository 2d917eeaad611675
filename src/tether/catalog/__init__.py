"""Catalog services: datasets, data rows, metadata schema and the rules of a valid row."""
