"""AWS IoT's door: its wire shapes and errors, and its operations over the domain."""
