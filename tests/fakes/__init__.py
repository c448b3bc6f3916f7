"""Real servers on 127.0.0.1 that speak outside APIs, for end-to-end tests."""
