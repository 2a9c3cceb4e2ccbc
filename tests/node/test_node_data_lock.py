"""One node per data directory: a second one is refused before it opens anything, and the
lock goes with the process that held it, however that process ends."""

import os
import signal

import pytest
import trio

from cli_process import TRIOPACS
from triopacs import open_node
from triopacs.storage.data_lock import DataDirectoryInUse

from .nodes import node_config
from .served import served_node


async def test_a_second_embedded_node_on_the_same_data_is_refused(tmp_path):
    config = node_config(tmp_path / "node")
    async with open_node(config) as first:
        index = config.data_dir / "index.sqlite"
        before = index.stat().st_mtime_ns
        with pytest.raises(DataDirectoryInUse, match=f"in use by another node \\(pid {os.getpid()}\\)"):
            async with open_node(config):
                pass
        assert index.stat().st_mtime_ns == before  # nothing was opened, nothing written
        assert first.address.port  # the first one still serves
    async with open_node(config):  # once it has stopped, the directory is free again
        pass


async def test_serve_on_a_data_directory_in_use_says_so_in_one_line(tmp_path):
    async with served_node(tmp_path) as node:
        done = await trio.run_process(
            [*TRIOPACS, "serve", "--data", str(tmp_path / "data"), "--port", "0"],
            capture_stdout=True, capture_stderr=True, check=False,
        )
        assert done.returncode == 2
        assert done.stderr.decode().splitlines() == [
            f"triopacs serve: the data directory {tmp_path / 'data'} is in use by another node (pid {node.process.pid})"
        ]
        assert node.alive()


async def test_a_killed_node_leaves_no_lock_behind(tmp_path):
    async with served_node(tmp_path) as node:
        node.process.send_signal(signal.SIGKILL)
        await node.process.wait()
    async with open_node(node_config(tmp_path / "data")):
        pass


async def test_a_command_that_runs_a_node_of_its_own_refuses_while_one_serves(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\ndata_dir = "{tmp_path / "data"}"\n')
    async with served_node(tmp_path) as node:
        done = await trio.run_process([*TRIOPACS, "migrate", "--now", "--config", str(config)],
                                      capture_stdout=True, capture_stderr=True, check=False)
        assert node.alive()
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"triopacs migrate: the data directory {tmp_path / 'data'} is in use by another node (pid {node.process.pid})"
    ]
