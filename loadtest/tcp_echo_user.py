"""TcpEchoUser: raw TCP to the Twisted echo, one persistent connection per user.

Run alone: ``locust -f loadtest --headless -u 10 -r 10 -t 10s TcpEchoUser`` (or ``--tags tcp``).
"""

from locust import tag, task

from loadtest._payloads import message
from loadtest._users import TcpSocketUser


@tag("tcp")
class TcpEchoUser(TcpSocketUser):
    @task(5)
    def echo_64_bytes(self) -> None:
        self.client.echo(message(64).encode(), "echo 64 B")

    @task(1)
    def echo_16_kib(self) -> None:
        self.client.echo(message(16384).encode(), "echo 16 KiB")
