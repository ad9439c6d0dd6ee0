"""The gevent resolver service: many host names resolved concurrently over HTTP/JSON."""
