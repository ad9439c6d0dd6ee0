"""UdpEchoUser: datagrams to the asyncio echo; a reply that does not come back is a failure.

Run alone: ``locust -f loadtest --headless -u 10 -r 10 -t 10s UdpEchoUser`` (or ``--tags udp``).
"""

from locust import tag, task

from loadtest._payloads import message
from loadtest._users import UdpSocketUser


@tag("udp")
class UdpEchoUser(UdpSocketUser):
    @task(5)
    def echo_64_bytes(self) -> None:
        self.client.echo(message(64).encode(), "echo 64 B")

    @task(1)
    def echo_1_kib(self) -> None:
        self.client.echo(message(1024).encode(), "echo 1 KiB")
