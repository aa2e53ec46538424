"""Reunite: police case intake, lifecycle, approval and durable dispatch."""
