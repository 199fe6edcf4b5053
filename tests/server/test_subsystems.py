"""The web UI is a subsystem that ``werk server`` registers; the server runs what it is given."""

from __future__ import annotations

from pathlib import Path

import httpx

from werk.cli.server import build_server
from werk.server.config import ServerConfig
from werk.server.server import Server
from werk.webui.server import WebServer


class Recorder:
    """A subsystem that notes when it is started and stopped."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def start(self) -> None:
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_subsystems_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    # Given a server without a web UI and two registered subsystems
    log: list[str] = []
    server = Server(ServerConfig(binding=("127.0.0.1", 0), web_binding=None, data_dir=tmp_path))
    server.register(Recorder("a", log))
    server.register(Recorder("b", log))
    # When it starts and stops
    await server.start()
    assert log == ["start a", "start b"]
    await server.stop()
    # Then they started in order and stopped in reverse
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_build_server_registers_the_web_ui(tmp_path: Path) -> None:
    # Given the server werk server builds, with a web binding on a free port
    config = ServerConfig(binding=("127.0.0.1", 0), web_binding=("127.0.0.1", 0), data_dir=tmp_path)
    server = build_server(config)
    assert [type(s) for s in server.subsystems] == [WebServer]
    await server.start()
    try:
        # Then the web UI answers on the port it bound
        assert server.web_port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.web_port}") as client:
            response = await client.get("/health")
        assert response.status_code == 200
        assert response.json()["server"]["faktory_version"]
    finally:
        await server.stop()


def test_build_server_without_a_web_binding_has_no_web_ui(tmp_path: Path) -> None:
    config = ServerConfig(binding=("127.0.0.1", 0), web_binding=None, data_dir=tmp_path)
    assert build_server(config).subsystems == []
