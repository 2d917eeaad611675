"""Jobs: asynchronous work (bulk import, sync, export) whose state users watch."""
