"""Examples of extending cdc-harness from outside the package."""
