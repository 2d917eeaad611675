"""Labeling projects: projects and their label configs, tasks, annotations, predictions,
exports, and target storages the annotations go out to."""
