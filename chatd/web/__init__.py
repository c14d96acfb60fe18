"""The web client chatd serves to browsers: its static files and the headers
that go with them. The HTTP and WebSocket protocols are in chatd/transport."""
