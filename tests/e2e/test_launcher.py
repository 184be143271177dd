"""`flashsale up` / `down` on their own ports and data folder, as a newcomer would run them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from shared.localservers import free_port, missing_packages
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] != "Z":
                alive.append(pid)
    return alive


def _processes_under(home: Path) -> list[str]:
    """Command lines of live processes that mention the data folder (servers use it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home) in cmd:
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


class Launch:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.ports = {
            "--amqp-port": free_port(),
            "--mgmt-port": free_port(),
            "--pg-port": free_port(),
            "--http-port": free_port(),
        }
        self.proc: subprocess.Popen[str] | None = None
        self.output = home / "up.out"
        self.last_start = 0

    def args(self, *cmd: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cli.main",
            *cmd,
            "--home",
            str(self.home),
            *[f"{k}={v}" for k, v in self.ports.items() if cmd[0] == "up" or k != "--http-port"],
        ]

    def up(self) -> dict[str, int]:
        start = len(self.output.read_text()) if self.output.exists() else 0
        out = self.output.open("a")
        self.proc = subprocess.Popen(
            self.args("up"),
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")},
        )
        deadline = time.monotonic() + 120
        while "Flash-sale checkout is up." not in self.new_output(start):
            assert self.proc.poll() is None, self.output.read_text()
            assert time.monotonic() < deadline, self.output.read_text()
            time.sleep(0.5)
        self.last_start = start
        line = next(x for x in self.new_output(start).splitlines() if "Processes" in x)
        parts = line.split()[1:]
        return {parts[i]: int(parts[i + 1].rstrip(",")) for i in range(0, len(parts), 2)}

    def new_output(self, start: int) -> str:
        return self.output.read_text()[start:]

    def cleanup(self) -> None:
        """Stop whatever is left, by pid, even when the test failed half-way."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        subprocess.run(
            self.args("down"), cwd=PROJECT_ROOT, timeout=120, check=False, capture_output=True
        )

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['--http-port']}"


@pytest.mark.skipif(
    bool(missing_packages()) and os.geteuid() != 0,
    reason="needs rabbitmq-server and postgresql installed, or root to install",
)
def test_up_serves_the_system_and_down_and_ctrl_c_leave_nothing_running() -> None:
    home = Path(tempfile.mkdtemp(prefix="flashsale-launch-"))
    launch = Launch(home)
    try:
        pids = launch.up()
        gateways = {"gateway", "gateway-2"}  # FLASHSALE_GATEWAY_PROCESSES, on one port
        assert set(pids) == gateways | {"inventory-1", "inventory-2", "orders", "payments"}
        product = httpx.get(f"{launch.api}/api/products/1", timeout=10)
        assert product.status_code == 200 and product.json()["id"] == 1
        ui = httpx.get(
            f"http://127.0.0.1:{launch.ports['--mgmt-port']}/api/queues",
            auth=("flashsale", "flashsale"),
            timeout=10,
        )
        queues = {q["name"]: q["arguments"] for q in ui.json()}
        banner = launch.new_output(launch.last_start)
        prometheus = next(x.split()[-1] for x in banner.splitlines() if "RabbitMQ metrics" in x)
        scraped = httpx.get(prometheus, timeout=10)
        assert scraped.status_code == 200 and "rabbitmq_" in scraped.text  # queue depths scrapable
        assert queues["inventory.p00"]["x-single-active-consumer"] is True
        assert queues["holds.delay.120s"]["x-dead-letter-exchange"] == "flashsale.inventory"

        # the supervisor restarts a child that dies
        os.kill(pids["orders"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            state = json.loads((home / "state.json").read_text())
            restarted = int(state["children"]["orders"])
            if restarted != pids["orders"] and _pids_alive([restarted]):
                break
            assert time.monotonic() < deadline, launch.output.read_text()
            time.sleep(0.3)
        assert "orders exited" in launch.output.read_text()
        pids["orders"] = restarted

        down = subprocess.run(
            launch.args("down"), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert launch.proc is not None and launch.proc.wait(timeout=60) == 0
        assert _pids_alive(list(pids.values())) == []
        assert _processes_under(home) == []

        # a second `up` reuses the data: the demo products are there, not added again
        pids = launch.up()
        assert "demo products already present" in launch.new_output(launch.last_start)
        assert len(httpx.get(f"{launch.api}/api/products", timeout=10).json()) == 10
        launch.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert launch.proc.wait(timeout=90) == 0
        assert _pids_alive(list(pids.values())) == []
        assert _processes_under(home) == []
    finally:
        launch.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def test_up_says_so_when_the_gateway_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "up",
                "--home",
                str(tmp_path),
                f"--http-port={port}",
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} (gateway) is taken" in result.stdout
