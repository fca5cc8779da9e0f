"""The native door: the HTTP side shared by the route handlers of /device and /customer."""
