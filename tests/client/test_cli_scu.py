"""`triopacs echo|store|find|move|get` as real subprocesses against DCMTK peers: output,
exit status (0 all good, 1 DICOM/network failure, 2 bad input) and one-line errors."""

import json
import shutil

import trio
from cli_process import run_cli
from dicom_samples import build_mixed_folder, write_population
from pydicom.data import get_testdata_file

from .helpers import LOOPBACK, by_instance_uid, populated_qrscp


def address(peer) -> list[str]:
    return [LOOPBACK, str(peer.port), "--aec", peer.ae_title]


def text(stream: bytes) -> list[str]:
    return stream.decode().strip().splitlines()


async def run_together(*commands: list[str]) -> list:
    """Run independent CLI invocations at once (start-up is most of their time)."""
    results: list = [None] * len(commands)

    async def run(index: int, argv: list[str]) -> None:
        results[index] = await run_cli(argv)

    async with trio.open_nursery() as nursery:
        for index, argv in enumerate(commands):
            nursery.start_soon(run, index, argv)
    return results


async def test_echo_exit_status_and_one_line_errors(storescp_peer):
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()
    ok, refused, bad_title = await run_together(
        ["echo", *address(storescp_peer)],
        ["echo", LOOPBACK, str(port)],
        ["echo", *address(storescp_peer), "--aet", "A_CALLING_AE_TITLE_TOO_LONG"],
    )
    assert ok.returncode == 0, ok.stderr
    assert text(ok.stdout)[0].startswith(f"C-ECHO STORESCP@127.0.0.1:{storescp_peer.port}: Success")

    assert refused.returncode == 1
    assert text(refused.stderr) == [f"triopacs echo: cannot connect to 127.0.0.1:{port}: Connection refused"]

    assert bad_title.returncode == 2
    assert len(text(bad_title.stderr)) == 1 and "calling AE title" in bad_title.stderr.decode()


async def test_store_a_folder_skips_non_dicom_files_and_sums_up(storescp_peer, tmp_path):
    folder = tmp_path / "upload"
    samples = build_mixed_folder(folder, names=["CT_small.dcm", "MR_small_RLE.dcm", "rtplan.dcm"])
    (folder / "notes.txt").write_text("not DICOM")
    (folder / "sub").mkdir()
    shutil.copy(get_testdata_file("rtdose.dcm"), folder / "sub" / "dose.dcm")

    flat = await run_cli(["store", *address(storescp_peer), str(folder)])
    assert flat.returncode == 0, flat.stderr
    summary = text(flat.stdout)
    assert summary[0].startswith("sent 3 of 3 files, ") and "MB/s" in summary[0]
    assert summary[1:] == ["skipped 1 non-DICOM files"]
    # Not a terminal: one plain progress line per file.
    assert sorted(text(flat.stderr)) == sorted(f"[{n}/3] {s.path}: ok" for n, s in zip((1, 2, 3), sorted(samples, key=lambda s: s.path)))

    deep = await run_cli(["store", *address(storescp_peer), "-r", str(folder)])
    assert deep.returncode == 0, deep.stderr
    assert text(deep.stdout)[0].startswith("sent 4 of 4 files")
    assert len(storescp_peer.stored_files()) == 4  # the same three again, and sub/dose.dcm


async def test_store_reports_each_failure_and_exits_1(dcmqrscp_peer, tmp_path):
    jpeg = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")  # dcmqrscp takes uncompressed data only
    plain = get_testdata_file("CT_small.dcm")
    result = await run_cli(["store", *address(dcmqrscp_peer), plain, jpeg])
    assert result.returncode == 1
    lines = text(result.stdout)
    assert lines[0].startswith("sent 1 of 2 files")
    assert lines[1] == "failed 1:"
    assert lines[2].startswith(f"  {jpeg}: the peer accepted no presentation context for Secondary Capture Image Storage")


async def test_find_prints_a_table_or_dicom_json(tmp_path):
    population = write_population(tmp_path / "population", studies_per_patient=2, series_per_study=1, images_per_series=1)
    mine = sorted((s.spec.study_date, s.study_instance_uid) for s in population if s.spec.patient_id == "TRIO0001")
    keys = ["-k", "PatientID=TRIO0001", "-k", "StudyDate", "-k", "0020,000D"]
    async with populated_qrscp(tmp_path, population) as (qr, _destination):
        table, as_json, nothing = await run_together(
            ["find", *address(qr), "--level", "study", *keys],
            ["find", *address(qr), "--level", "STUDY", "--json", *keys],
            ["find", *address(qr), "--level", "STUDY", "-k", "PatientID=NOBODY"],
        )
    assert table.returncode == 0, table.stderr
    header, *rows = text(table.stdout)
    assert header.split() == ["PatientID", "StudyDate", "StudyInstanceUID"]
    assert sorted(tuple(row.split()) for row in rows) == [("TRIO0001", date, uid) for date, uid in mine]
    assert header.index("StudyDate") == rows[0].index("2024")  # columns aligned
    assert text(table.stderr) == ["2 matches"]

    assert as_json.returncode == 0, as_json.stderr
    matches = json.loads(as_json.stdout)
    assert sorted((m["00080020"]["Value"][0], m["0020000D"]["Value"][0]) for m in matches) == mine
    assert all(m["0020000D"]["vr"] == "UI" for m in matches)

    assert nothing.returncode == 0 and text(nothing.stdout) == ["PatientID"] and text(nothing.stderr) == ["0 matches"]


async def test_move_and_get_print_their_counts(tmp_path):
    population = write_population(tmp_path / "population", patients=(("TRIO0001", "DOE^JANE"),), studies_per_patient=1)
    study_uid = population[0].study_instance_uid
    expected = {uid for s in population for uid in s.sop_instance_uids}
    key = ["--level", "STUDY", "-k", f"StudyInstanceUID={study_uid}"]
    async with populated_qrscp(tmp_path, population) as (qr, destination):
        move, get, lost = await run_together(
            ["move", *address(qr), "--dest", destination.ae_title, *key],
            ["get", *address(qr), "-o", str(tmp_path / "got"), *key],
            ["move", *address(qr), "--dest", "NOWHERE", *key],
        )
        moved = set(by_instance_uid(destination.stored_files()))
    assert move.returncode == 0, move.stderr
    assert text(move.stdout) == [f"C-MOVE: completed {len(expected)}, failed 0, warning 0; status 0x0000 Success"]
    assert text(move.stderr)[0].startswith("C-MOVE: remaining ")
    assert moved == expected

    assert get.returncode == 0, get.stderr
    assert text(get.stdout) == [
        f"C-GET: completed {len(expected)}, failed 0, warning 0; status 0x0000 Success",
        f"received {len(expected)} instances into {tmp_path / 'got'}",
    ]
    assert set(by_instance_uid((tmp_path / "got").iterdir())) == expected

    assert lost.returncode == 1
    assert text(lost.stderr) == ["triopacs move: C-MOVE failed: 0xA801 Refused: move destination unknown"]


async def test_bad_input_exits_2_before_connecting(tmp_path):
    # Nothing listens on port 9: bad input must be caught before any connection is tried.
    (tmp_path / "empty").mkdir()
    bad_key, nothing_to_send = await run_together(
        ["find", LOOPBACK, "9", "--level", "STUDY", "-k", "NoSuchKeyword=1"],
        ["store", LOOPBACK, "9", str(tmp_path / "empty")],
    )
    assert bad_key.returncode == 2
    assert text(bad_key.stderr) == ["triopacs find: -k NoSuchKeyword: no DICOM attribute has that keyword"]
    assert nothing_to_send.returncode == 2
    assert text(nothing_to_send.stderr) == ["triopacs store: no DICOM files to send (0 other files skipped)"]


async def test_store_draws_a_progress_bar_on_a_terminal(storescp_peer, tmp_path):
    import os
    import pty

    from cli_process import TRIOPACS

    build_mixed_folder(tmp_path / "upload", names=["CT_small.dcm", "MR_small.dcm"])
    controller, terminal = pty.openpty()
    try:
        with trio.fail_after(60):
            result = await trio.run_process(
                [*TRIOPACS, "store", *address(storescp_peer), str(tmp_path / "upload")],
                stderr=terminal, capture_stdout=True, check=False,
            )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert result.returncode == 0
    screen = shown.decode()
    assert "\r[###############...............] 1/2 files" in screen
    assert "\r[##############################] 2/2 files" in screen
    assert "upload/CT_small.dcm: ok" not in screen  # the per-file lines are for logs, not terminals
