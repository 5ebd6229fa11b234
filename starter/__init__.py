"""The client side: start, watch, signal, query and list imports (CLI `dataimport`)."""
