"""The server: TCP listener, connections, command handlers, periodic tasks, lifecycle."""
