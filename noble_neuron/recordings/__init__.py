"""A cell's step sweeps (recorded, or simulated on its detailed model) and its features measured on them."""
