"""Uploading files straight into storage the organization owns (never into the database).

``destination``: where an upload goes -- a source storage of the dataset, or the
organization's managed storage (a folder tether keeps under its data dir) -- and the keys
that fit it. ``objects``: putting one object, streamed, size-checked and all or nothing, and
looking one up (what makes a re-run skip what is there).
"""
