"""Background jobs (fine-tune, embed) in child processes, with progress and cancel."""
