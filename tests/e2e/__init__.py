"""End-to-end tests: the CLI, the API, worker processes and the browser, as users run them."""
