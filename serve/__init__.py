"""onepass.serve: the BentoML service."""
