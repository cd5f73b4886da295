"""One module per parser of outside input; each exposes ``one_input``."""
