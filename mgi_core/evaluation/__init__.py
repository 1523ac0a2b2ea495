"""Evaluation: metrics as pure numpy functions, the protocol, version comparison."""
