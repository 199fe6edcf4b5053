"""The Faktory work protocol, sans I/O: framing, replies, commands and password hashing.

Nothing here touches a socket or an event loop; the server and the client both feed
bytes in and take values or bytes out.
"""
