"""tcp-echo: the book's Twisted ``Echo(Protocol)`` grown into a service.

Run it with ``python -m services.tcp_echo``; connect with: nc 127.0.0.1 8000
"""
