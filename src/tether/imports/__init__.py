"""Bulk import: read a file in any supported format, validate rows, write them in chunks."""
