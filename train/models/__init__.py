"""Model definitions used by the tasks."""
