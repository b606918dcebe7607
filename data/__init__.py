"""onepass.data: the synthetic renderer, label codecs and the folder dataset format."""
