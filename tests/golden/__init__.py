"""Golden files: what the validation engine finds in the test corpus, checked in."""
