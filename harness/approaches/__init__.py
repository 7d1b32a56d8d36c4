"""Approaches: one CDC method each, normalizing native change records to ChangeEvent."""
