"""The cross-storage pipeline's sink: consumer loop (``sink``) and apply step (``apply``)."""
