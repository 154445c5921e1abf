"""Taking a model elsewhere: the OpenAI-compatible server (engine, requests, API, page)."""
