"""Sources: turn engine-neutral steps into real writes on one engine family and fill the ledger."""
