import json
import signal
import subprocess
import tomllib

import trio

from triopacs import open_node
from triopacs.actors.node.ae_registry import ListAEs, LookupAE, RegisterAE, RemoteAE, UnknownAE
from triopacs.config import Config, HttpSettings, NodeSettings, TraceSettings

from .cli_process import TRIOPACS, LineReader, run_cli


async def start_serve(tmp_path, *extra):
    process = await trio.lowlevel.open_process(
        [*TRIOPACS, "serve", "--data", str(tmp_path / "data"), "--port", "0", "--http-port", "0", "--events-port", "0", "--log-format", "json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    return process, LineReader(process.stdout)


async def test_serve_prints_ready_and_exits_0_on_sigint(tmp_path):
    process, stdout = await start_serve(tmp_path, "--ae-title", "TESTNODE")
    try:
        with trio.fail_after(30):
            line = await stdout.readline()
        assert line.startswith("ready TESTNODE"), line
        assert (tmp_path / "data").is_dir()
        process.send_signal(signal.SIGINT)
        with trio.fail_after(2):
            code = await process.wait()
        assert code == 0
    finally:
        process.kill()
        await process.wait()


async def test_serve_exits_0_on_sigterm(tmp_path):
    process, stdout = await start_serve(tmp_path)
    try:
        with trio.fail_after(30):
            assert (await stdout.readline()).startswith("ready")
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(2):
            assert await process.wait() == 0
    finally:
        process.kill()
        await process.wait()


async def test_version():
    result = await run_cli(["--version"])
    assert result.returncode == 0 and result.stdout.decode().strip() == "triopacs 0.1.0"


async def test_print_default_round_trips_through_the_loader(tmp_path):
    result = await run_cli(["config", "--print-default"])
    assert result.returncode == 0
    path = tmp_path / "default.toml"
    path.write_bytes(result.stdout)
    assert tomllib.loads(result.stdout.decode())["node"]["port"] == 11112
    check = await run_cli(["config", "--check", str(path)])
    assert check.returncode == 0, check.stderr
    from triopacs.config import load_config

    assert load_config(path, environ={}) == Config()


async def test_bad_config_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[node]\nport = 99999\n")
    result = await run_cli(["serve", "--config", str(path), "--data", str(tmp_path)])
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert lines == ["triopacs serve: node.port = 99999: must be between 0 and 65535"]
    assert result.stdout == b""


async def test_bad_environment_variable_is_exit_2(tmp_path):
    result = await run_cli(["serve", "--data", str(tmp_path)], env={"TRIOPACS_LOG_LEVEL": "loud"})
    assert result.returncode == 2
    assert "log.level = 'loud'" in result.stderr.decode()


async def record_trace(path, data):
    config = Config(http=HttpSettings(port=0, events_port=0), node=NodeSettings(port=0, data_dir=str(data)), trace=TraceSettings(file=str(path)))
    async with open_node(config) as node:
        aes = node.ref("aes")
        await aes.send(RegisterAE(entry=RemoteAE(ae_title="WS1", host="127.0.0.1", port=4006)))
        await aes.ask(LookupAE(ae_title="WS1"))
        try:
            await aes.ask(LookupAE(ae_title="NOBODY"))
        except UnknownAE:
            pass
        await aes.ask(ListAEs())


async def test_replay_command_passes_on_a_faithful_trace(tmp_path):
    trace = tmp_path / "trace.jsonl"
    await record_trace(trace, tmp_path / "data")
    result = await run_cli(["replay", str(trace), "--actor", "/node/services/aes"])
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert "identical" in result.stdout.decode()


async def test_replay_command_fails_when_behaviour_differs(tmp_path):
    trace = tmp_path / "trace.jsonl"
    await record_trace(trace, tmp_path / "data")
    # Pretend the recorded node answered the lookup with another port: today's code disagrees.
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    for record in records:
        if record["kind"] == "reply" and record.get("type") == "aes.remote-ae":
            record["payload"]["port"] = 4007
    trace.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = await run_cli(["replay", str(trace)])
    assert result.returncode == 1
    out = result.stdout.decode()
    assert "reply /node/services/aes -> None" in out
    assert '-{"payload":{"ae_title":"WS1","host":"127.0.0.1","port":4007,"tls":false},"type":"aes.remote-ae"}' in out
    assert '+{"payload":{"ae_title":"WS1","host":"127.0.0.1","port":4006,"tls":false},"type":"aes.remote-ae"}' in out


async def test_replay_of_a_missing_file_is_exit_2(tmp_path):
    result = await run_cli(["replay", str(tmp_path / "none.jsonl")])
    assert result.returncode == 2 and "no trace file" in result.stderr.decode()
