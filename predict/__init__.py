"""onepass.predict: the batch inference CLI."""
