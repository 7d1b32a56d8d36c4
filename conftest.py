"""Repository-level pytest configuration: the harness plugin loads through its pytest11 entry point."""
