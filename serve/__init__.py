"""onepass.serve: the BentoML service (the serve issue)."""
