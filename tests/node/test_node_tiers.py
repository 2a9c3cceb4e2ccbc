"""Storage tiers and HSM migration on a real node: a warm tier on another local path, a
cold tier on moto's S3 server or on Azurite, instances stored with the client, moved
hot -> warm -> cold by the migration service, then retrieved by DCMTK getscu/movescu
byte for byte; interrupted moves finished at start; a bad tier stopping `serve`."""

import sys

import attrs
import pydicom
import trio
from dicom_samples import SeriesSpec, new_uid, write_series
from peers import getscu, storescp
from peers.buckets import azure_settings, create_bucket, create_container, list_keys, s3_settings

from triopacs import open_node
from triopacs.actors import AsyncioPortal
from triopacs.actors.node.index_hsm import BeginMigration
from triopacs.actors.node.tiers import GetTierStatistics
from triopacs.config import Config, HsmSettings
from triopacs.storage.hsm_db import Move
from triopacs.storage.local_store import TRASH
from triopacs.storage.s3 import S3Store
from triopacs.storage.tier_settings import LocalSettings, TierDefinition
from triopacs.workflow.migration import MigrationCycleFinished, RunMigration

from .nodes import dataset_bytes, index_rows, node_config, peer, remote, stored_files
from .test_node_retrieve import load, run_movescu, study  # noqa: F401 - study is a fixture

NEVER = 36500.0  # days


def tiered(tmp_path, tiers, *, remotes=(), **hsm) -> Config:
    base = node_config(tmp_path / "node", remote=remotes)
    return attrs.evolve(base, tier=tuple(tiers), hsm=HsmSettings(enabled=False, **hsm))


def warm_tier(tmp_path) -> TierDefinition:
    return TierDefinition(name="warm", kind="local", prefix="", settings=LocalSettings(path=str(tmp_path / "warm")))


def tiers_of(node) -> dict[str, int]:
    return dict(index_rows(node, "SELECT tier, count(*) FROM instance GROUP BY tier"))


def received(paths) -> dict[str, bytes]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): dataset_bytes(p)[1] for p in paths}


async def trash_emptied(*roots) -> None:
    with trio.fail_after(10):
        while any(any((root / TRASH).iterdir()) for root in roots if (root / TRASH).is_dir()):
            await trio.sleep(0.01)  # polling a condition: emptying the trash is the tiers' own business


async def migrate(node, dry_run=False):
    return await node.migration.ask(RunMigration(dry_run=dry_run), timeout=120)


async def test_hot_to_warm_to_s3_cold_then_getscu_and_movescu_are_byte_identical(tmp_path, study, s3_endpoint):
    cold = TierDefinition(name="cold", kind="s3", prefix="cold/", settings=s3_settings(s3_endpoint))
    async with AsyncioPortal() as portal:
        await create_bucket(portal, cold.settings)
    tiers = [warm_tier(tmp_path), cold]
    async with storescp(extra_args=["+B"], parent_dir=tmp_path) as destination:
        remotes = [remote(destination.ae_title, destination.port)]
        # First node: hot -> warm only.
        async with open_node(tiered(tmp_path, tiers, remotes=remotes, warm_tier="warm", cold_tier="cold", hot_to_warm=0, warm_to_cold=NEVER)) as node:
            kept = await load(node, study)
            dry = await migrate(node, dry_run=True)
            assert len(dry.planned) == 5 and tiers_of(node) == {"local": 5}
            report = await migrate(node)
            assert (report.migrated, report.failures, report.strays_removed) == (5, 0, 0), report
            assert tiers_of(node) == {"warm": 5}
            assert stored_files(node) == []  # the hot copies are gone
            assert len(list((tmp_path / "warm").rglob("*.dcm"))) == 5
        # After a restart (the tier metadata is in the index): warm -> cold.
        async with open_node(tiered(tmp_path, tiers, remotes=remotes, warm_tier="warm", cold_tier="cold", hot_to_warm=0, warm_to_cold=0)) as node:
            with node.subscribe(MigrationCycleFinished) as events:
                report = await migrate(node)
                assert (await events.receive()).report == report
            assert (report.migrated, report.failures) == (5, 0), report
            assert tiers_of(node) == {"cold": 5}
            await trash_emptied(tmp_path / "warm")
            assert [p for p in (tmp_path / "warm").rglob("*") if p.is_file()] == []
            sizes = index_rows(node, "SELECT file_size FROM instance")
            assert all(size > 0 for (size,) in sizes)
            got = await getscu(peer(node), {"StudyInstanceUID": study[0].study_instance_uid}, received_dir=tmp_path / "got")
            got.check()
            moved = await run_movescu(node, study[0].study_instance_uid, destination.ae_title, cwd=tmp_path)
            again = await migrate(node)
            statistics = await node.tier("cold").ask(GetTierStatistics())
        arrived = received(destination.stored_files())
    assert received(got.received_files()) == kept  # C-GET from S3, byte for byte
    assert moved.status == 0 and arrived == kept  # C-MOVE from S3, byte for byte
    assert (again.migrated, again.strays_removed, again.failures) == (0, 0, 0)
    assert statistics.healthy and statistics.puts == 5 and statistics.fetches >= 10
    async with AsyncioPortal() as portal:
        keys = await list_keys(portal, S3Store, cold.settings)
    assert len(keys) == 5 and all(k.startswith(f"cold/{study[0].study_instance_uid}/") for k in keys)
    assert {k.rsplit("/", 1)[1].removesuffix(".dcm") for k in keys} == set(kept)


async def test_hot_to_azure_with_block_uploads_then_getscu_is_byte_identical(tmp_path, study, azurite_endpoint):
    # Thresholds far below an instance's size: every upload goes as several blocks.
    cool = TierDefinition(
        name="cool", kind="azure", prefix="pacs/",
        settings=azure_settings(azurite_endpoint, block_upload_threshold=4096, block_size=4096, access_tier="Cool"),
    )
    async with AsyncioPortal() as portal:
        await create_container(portal, cool.settings)
    async with open_node(tiered(tmp_path, [cool], warm_tier="cool", hot_to_warm=0)) as node:
        kept = await load(node, study)
        report = await migrate(node)
        assert (report.migrated, report.failures) == (5, 0), report
        assert tiers_of(node) == {"cool": 5}
        got = await getscu(peer(node), {"StudyInstanceUID": study[0].study_instance_uid}, received_dir=tmp_path / "got")
        got.check()
    assert received(got.received_files()) == kept


async def test_interrupted_moves_are_finished_at_start_and_strays_removed(tmp_path, study):
    """What a node killed mid-migration leaves - a journal row in each state with its
    copies, and an object no row names - is settled: every instance keeps exactly the
    copy its row names, nothing else stays."""
    config = tiered(tmp_path, [warm_tier(tmp_path)], warm_tier="warm", hot_to_warm=NEVER)
    warm = tmp_path / "warm"
    async with open_node(config) as node:
        await load(node, study)
        rows = index_rows(
            node,
            "SELECT i.sop_instance_uid, st.study_instance_uid, se.series_instance_uid, i.file_path, i.file_size, i.sha256 "
            "FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk ORDER BY i.pk",
        )
        moves = []
        for sop, study_uid, series_uid, path, size, sha in rows[:2]:
            key = f"{study_uid}/{series_uid}/{sop}.dcm"
            (warm / key).parent.mkdir(parents=True, exist_ok=True)
            (warm / key).write_bytes((node.config.data_dir / path).read_bytes())  # the copy was made
            move = Move(sop_instance_uid=sop, study_instance_uid=study_uid, source_tier="local", source_key=path,
                        target_tier="warm", target_key=key, size=size, sha256=sha)
            moves.append(move)
        await node.index.ask(BeginMigration(moves=tuple(moves)))
        (warm / "1.2.3" / "stray.dcm").parent.mkdir(parents=True)
        (warm / "1.2.3" / "stray.dcm").write_bytes(b"no row names me")
    # The second move was switched (the index commits that) before the "crash".
    import sqlite3

    with sqlite3.connect(config.data_dir / "index.sqlite") as db:
        second = moves[1]
        db.execute("UPDATE instance SET tier = 'warm', file_path = ? WHERE sop_instance_uid = ?", (second.target_key, second.sop_instance_uid))
        db.execute("UPDATE migration_journal SET state = 'switched' WHERE sop_instance_uid = ?", (second.sop_instance_uid,))
    for root in (warm, config.data_dir):  # what a crash left in the trashes
        (root / TRASH).mkdir(exist_ok=True)
        (root / TRASH / "leftover.dcm").write_bytes(b"removed before the crash")
    async with open_node(config) as node:
        report = await migrate(node)  # waits for the start-up recovery (one cycle at a time)
        await trash_emptied(warm, config.data_dir)  # the leftovers, and the sources removed since
        assert index_rows(node, "SELECT count(*) FROM migration_journal") == [(0,)]
        assert tiers_of(node) == {"local": 4, "warm": 1}
        first_copy = warm / moves[0].target_key
        assert not first_copy.exists()  # copying: rolled back, the hot file is what the row names
        assert (node.config.data_dir / moves[0].source_key).exists()
        assert not (node.config.data_dir / moves[1].source_key).exists()  # switched: the source went
        assert (warm / moves[1].target_key).exists()
        assert report.strays_removed == 1 and not (warm / "1.2.3" / "stray.dcm").exists()
        got = await getscu(peer(node), {"StudyInstanceUID": study[0].study_instance_uid}, received_dir=tmp_path / "got")
    got.check()
    assert len(got.received_files()) == 5  # 0 lost


async def test_a_tier_empties_its_trash_at_start(tmp_path):
    config = tiered(tmp_path, [warm_tier(tmp_path)], warm_tier="warm", hot_to_warm=NEVER)
    for root in (tmp_path / "warm", config.data_dir):
        (root / TRASH).mkdir(parents=True)
        (root / TRASH / "leftover.dcm").write_bytes(b"removed before a crash")
    async with open_node(config):
        await trash_emptied(tmp_path / "warm", config.data_dir)


async def test_a_bad_tier_stops_serve_with_one_line(tmp_path, s3_endpoint, azurite_endpoint):
    settings = s3_settings(s3_endpoint)
    wrong_key = azurite_endpoint.connection_string.replace("AccountKey=", "AccountKey=AAAA")
    cases = {
        "missing bucket": (
            f'[[tier]]\nname = "cold"\nkind = "s3"\nbucket = "missing"\nendpoint_url = "{settings.endpoint_url}"\n'
            f'access_key_id = "testing"\nsecret_access_key = "testing"\nmax_attempts = 1\n',
            "tier 'cold' (s3): bucket 'missing' does not exist",
        ),
        "wrong credentials": (
            f'[[tier]]\nname = "cool"\nkind = "azure"\ncontainer = "archive"\nconnection_string = "{wrong_key}"\nmax_attempts = 0\n',
            "tier 'cool' (azure): access to container 'archive' denied",
        ),
    }
    for name, (table, expected) in cases.items():
        config = tmp_path / f"{name.replace(' ', '-')}.toml"
        config.write_text(f'[http]\nport = 0\nevents_port = 0\n[node]\nport = 0\ndata_dir = "{tmp_path / "data"}"\n\n{table}')
        result = await trio.run_process(
            [sys.executable, "-m", "triopacs", "serve", "--config", str(config)], capture_stdout=True, capture_stderr=True, check=False
        )
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2, (name, result.stderr.decode())
        assert len(lines) == 1 and expected in lines[0], (name, lines)


async def test_cli_migrate_now_and_tiers(tmp_path, study):
    """`triopacs migrate --now [--dry-run]` and `triopacs tiers` on a stopped node's data."""
    from triopacs.config import load_config

    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[http]\nport = 0\nevents_port = 0\n[node]\nport = 0\ndata_dir = "{tmp_path / "data"}"\n\n[log]\nlevel = "warning"\n\n'
        f'[hsm]\nwarm_tier = "warm"\nhot_to_warm = 0.0\n\n'
        f'[[tier]]\nname = "warm"\nkind = "local"\npath = "{tmp_path / "warm"}"\nprefix = "w/"\n'
    )
    async with open_node(load_config(toml)) as node:
        await load(node, study)

    async def triopacs(*args):
        result = await trio.run_process([sys.executable, "-m", "triopacs", *args, "--config", str(toml)], capture_stdout=True, capture_stderr=True, check=False)
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    code, out, err = await triopacs("migrate", "--now", "--dry-run")
    assert code == 0, err
    assert out.count("would move") == 5 and "would migrate 5 instances" in out
    code, out, err = await triopacs("migrate", "--now")
    assert code == 0 and "migrated 5 instances" in out, (out, err)
    # Progress on stderr, a line per batch when it is no terminal; the last says all of it.
    assert err.splitlines()[-1].startswith("[" + "#" * 30 + "] 5/5 instances"), err
    code, out, err = await triopacs("tiers")
    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["local"][2] == "0" and lines["warm"][2] == "5" and lines["warm"][-1] == "ok"
    assert len(list((tmp_path / "warm" / "w").rglob("*.dcm"))) == 5


async def test_s3_unresponsive_mid_migration_then_the_next_cycle_completes(tmp_path, s3_endpoint):
    """moto stops answering (SIGSTOP) after a few uploads: the cycle records the
    failures, the tier reports itself unhealthy, every instance keeps a copy the index
    names; once moto answers again the next cycle finishes the rest, leaving no stray."""
    import os
    import signal

    uid = new_uid()
    series = write_series(tmp_path / "source", SeriesSpec(count=6, modality="CT", study_instance_uid=uid))
    cold = TierDefinition(name="cold", kind="s3", prefix="c/", settings=s3_settings(s3_endpoint, max_attempts=1, read_timeout=0.5, connect_timeout=0.5))
    async with AsyncioPortal() as portal:
        await create_bucket(portal, cold.settings)
    config = tiered(tmp_path, [cold], warm_tier="cold", hot_to_warm=0, max_concurrent_migrations=1)
    moto = s3_endpoint.server.pid
    try:
        async with open_node(config) as node:
            kept = await load(node, [series])
            reports = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: _collect(reports, migrate(node)))
                with trio.fail_after(60):
                    while (await node.tier("cold").ask(GetTierStatistics())).puts < 2:
                        await trio.sleep(0.005)  # polling a condition: the uploads are the tier's to count
                os.kill(moto, signal.SIGSTOP)
            failing = reports[0]
            unhealthy = await node.tier("cold").ask(GetTierStatistics())
            on_hot = index_rows(node, "SELECT file_path FROM instance WHERE tier = 'local'")
            assert all((node.config.data_dir / path).is_file() for (path,) in on_hot)
            os.kill(moto, signal.SIGCONT)
            finishing = await migrate(node)
            settled = await migrate(node)
            healthy = await node.tier("cold").ask(GetTierStatistics())
            assert tiers_of(node) == {"cold": 6}
            got = await getscu(peer(node), {"StudyInstanceUID": uid}, received_dir=tmp_path / "got")
    finally:
        os.kill(moto, signal.SIGCONT)
    # The upload in flight when moto stopped may have landed or not: at least one did before.
    assert failing.migrated >= 1 and failing.failures >= 1 and failing.migrated + failing.failures + failing.skipped == 6, failing
    assert len(on_hot) == 6 - failing.migrated
    assert not unhealthy.healthy and unhealthy.problem
    assert finishing.failures == 0 and failing.migrated + finishing.migrated == 6, finishing
    assert settled.strays_removed == 0 and settled.migrated == 0
    assert healthy.healthy
    got.check()
    assert received(got.received_files()) == kept
    async with AsyncioPortal() as portal:
        keys = await list_keys(portal, S3Store, cold.settings)
    assert len(keys) == 6  # 0 strays


async def _collect(into: list, awaitable) -> None:
    into.append(await awaitable)


async def test_node_sigkilled_mid_migration_loses_nothing_and_leaves_no_stray(tmp_path, s3_endpoint):
    """`triopacs serve` migrating hot -> S3 on its schedule is SIGKILLed while a move is
    journaled; the next cycle (`triopacs migrate --now`) finishes or rolls back what it
    left: every instance has exactly the copy its row names, the bucket nothing else."""
    import os
    import signal

    uid = new_uid()
    series = write_series(tmp_path / "source", SeriesSpec(count=48, modality="CT", study_instance_uid=uid))
    settings = s3_settings(s3_endpoint)
    async with AsyncioPortal() as portal:
        await create_bucket(portal, settings)
    data = tmp_path / "data"
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[http]\nport = 0\nevents_port = 0\n[node]\nport = 0\ndata_dir = "{data}"\n\n[log]\nlevel = "warning"\n\n'
        f'[hsm]\nenabled = true\nschedule = "every 1s"\nwarm_tier = "cold"\nhot_to_warm = 0.0\nmax_concurrent_migrations = 1\n\n'
        f'[[tier]]\nname = "cold"\nkind = "s3"\nprefix = "k/"\nbucket = "{settings.bucket}"\nendpoint_url = "{settings.endpoint_url}"\n'
        f'access_key_id = "testing"\nsecret_access_key = "testing"\n'
    )
    from triopacs.config import load_config

    storing = load_config(toml)
    # The storing node must not migrate on its own schedule meanwhile: load() reads the hot files.
    async with open_node(attrs.evolve(storing, hsm=attrs.evolve(storing.hsm, enabled=False))) as node:
        kept = await load(node, [series])
    assert len(kept) == 48

    def rows(sql):
        import sqlite3

        with sqlite3.connect(f"file:{data / 'index.sqlite'}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()

    process = await trio.lowlevel.open_process([sys.executable, "-m", "triopacs", "serve", "--config", str(toml)])
    try:
        with trio.fail_after(90):
            while True:  # a condition the node's own commits make true: poll it
                if rows("SELECT count(*) FROM migration_journal")[0][0]:  # a batch is being copied
                    break
                await trio.sleep(0.002)
        # Hold moto still so the batch cannot finish before the kill lands, however loaded the machine.
        os.kill(s3_endpoint.server.pid, signal.SIGSTOP)
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        os.kill(s3_endpoint.server.pid, signal.SIGCONT)
        process.kill()
        await process.wait()
    left = rows("SELECT count(*) FROM migration_journal")[0][0]
    assert left, "the cycle finished before the kill: nothing was interrupted"
    result = await trio.run_process([sys.executable, "-m", "triopacs", "migrate", "--now", "--config", str(toml)], capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, (result.stdout.decode(), result.stderr.decode())
    assert rows("SELECT count(*) FROM migration_journal") == [(0,)], result.stdout.decode()
    assert rows("SELECT tier, count(*) FROM instance GROUP BY tier") == [("cold", 48)]  # 0 lost
    named = {key for (key,) in rows("SELECT file_path FROM instance")}
    async with AsyncioPortal() as portal:
        keys = await list_keys(portal, S3Store, settings)
    assert set(keys) == named and len(keys) == 48  # 0 strays
    assert not [p for p in (data / "files").rglob("*") if p.is_file()]  # no hot copy left behind
    async with open_node(load_config(toml)) as node:
        got = await getscu(peer(node), {"StudyInstanceUID": uid}, received_dir=tmp_path / "got")
    got.check()
    assert received(got.received_files()) == kept


async def test_a_retrieve_records_access_times_when_tracked(tmp_path, study):
    """Access times are what the policy reads: a C-GET updates them (one update per
    request) when track_access_time is on, and leaves them alone when it is off."""
    for track in (True, False):
        data = tmp_path / f"track-{track}"
        async with open_node(tiered(data, [], track_access_time=track)) as node:
            await load(node, study)
            before = dict(index_rows(node, "SELECT sop_instance_uid, last_accessed FROM instance"))
            got = await getscu(peer(node), {"StudyInstanceUID": study[0].study_instance_uid}, received_dir=data / "got")
            got.check()
            after = dict(index_rows(node, "SELECT sop_instance_uid, last_accessed FROM instance"))
        if track:
            assert all(after[uid] > before[uid] for uid in before)
        else:
            assert after == before
