"""Real DICOM servers on 127.0.0.1 as async context managers.

Each yields a `DicomPeer` (or `OrthancPeer`): AE title, port, the folder where it
stores what it receives, and the `ServerProcess` (pid, log). DCMTK and Orthanc have no
bind-address option and listen on every interface; tests only ever send to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from .dcmtk import dcmtk_program
from .process import LOOPBACK, ServerProcess, find_program, serve


@dataclass(frozen=True)
class RemoteAE:
    """Another application entity a server must know (to accept its queries or move to it)."""

    ae_title: str
    port: int
    host: str = LOOPBACK


@dataclass(frozen=True)
class DicomPeer:
    ae_title: str
    port: int
    storage_dir: Path
    server: ServerProcess
    host: str = LOOPBACK

    @property
    def pid(self) -> int:
        return self.server.pid

    def as_remote(self) -> RemoteAE:
        return RemoteAE(self.ae_title, self.port, self.host)

    def stored_files(self) -> list[Path]:
        """Regular files under storage_dir, excluding the servers' own bookkeeping."""
        return sorted(
            path
            for path in self.storage_dir.rglob("*")
            if path.is_file() and path.name not in _BOOKKEEPING
        )


_BOOKKEEPING = {"index.dat", "output.log"}


def _check_ae_title(ae_title: str) -> str:
    if not (0 < len(ae_title) <= 16) or "\\" in ae_title or ae_title.strip() != ae_title:
        raise ValueError(f"not a usable AE title: {ae_title!r}")
    return ae_title


# ---------------------------------------------------------------- DCMTK storescp


@contextlib.asynccontextmanager
async def storescp(
    ae_title: str = "STORESCP",
    *,
    accept_all_transfer_syntaxes: bool = True,
    fork: bool = False,
    extra_args: Sequence[str] = (),
    parent_dir: Path | None = None,
) -> AsyncIterator[DicomPeer]:
    """DCMTK storescp writing every received instance into its storage_dir.

    accept_all_transfer_syntaxes (+xa) accepts the compressed syntaxes too (the default
    storescp accepts only uncompressed ones). fork: one child process per association
    (otherwise associations are served one after another).
    """
    program = dcmtk_program("storescp")
    _check_ae_title(ae_title)

    def launch(ports: list[int], workdir: Path) -> list[str]:
        (workdir / "received").mkdir()
        argv = [program, "--aetitle", ae_title, "--output-directory", str(workdir / "received")]
        if accept_all_transfer_syntaxes:
            argv.append("+xa")
        if fork:
            argv.append("--fork")
        return [*argv, *extra_args, str(ports[0])]

    async with serve("storescp", launch, parent_dir=parent_dir) as server:
        yield DicomPeer(ae_title, server.port, server.workdir / "received", server)


# ---------------------------------------------------------------- DCMTK wlmscpfs


def write_worklist_file(item: Dataset, path: Path) -> None:
    """A worklist item as the Part 10 file wlmscpfs reads (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    copy = Dataset()
    copy.update(item)
    copy.file_meta = meta
    copy.save_as(path, enforce_file_format=True)


@contextlib.asynccontextmanager
async def wlmscpfs(
    items: Sequence[Dataset],
    ae_title: str = "WLMSCP",
    *,
    extra_args: Sequence[str] = (),
    parent_dir: Path | None = None,
) -> AsyncIterator[DicomPeer]:
    """DCMTK wlmscpfs answering Modality Worklist C-FIND from `items`, written as
    `<storage_dir>/item<n>.wl`. Its data directory holds one folder per called AE title,
    which must contain a file named `lockfile`. It returns the Specific Character Set of
    each file (-csk) and forks one process per association.
    """
    program = dcmtk_program("wlmscpfs")
    _check_ae_title(ae_title)

    def launch(ports: list[int], workdir: Path) -> list[str]:
        folder = workdir / "worklists" / ae_title
        folder.mkdir(parents=True)
        (folder / "lockfile").touch()
        for number, item in enumerate(items):
            write_worklist_file(item, folder / f"item{number:05d}.wl")
        return [program, "-csk", "-dfp", str(workdir / "worklists"), *extra_args, str(ports[0])]

    async with serve("wlmscpfs", launch, parent_dir=parent_dir) as server:
        yield DicomPeer(ae_title, server.port, server.workdir / "worklists" / ae_title, server)


# ---------------------------------------------------------------- DCMTK dcmqrscp


def _dcmqrscp_config(
    port: int, ae_title: str, storage: Path, known: Sequence[RemoteAE], max_pdu: int
) -> str:
    # HostTable lines name the peers it may move to; AETable gives our AE its folder,
    # read/write access, a quota (studies, bytes per study) and who may connect (ANY).
    hosts = [f"peer{index} = ({ae.ae_title}, {ae.host}, {ae.port})" for index, ae in enumerate(known)]
    return "\n".join(
        [
            f"NetworkTCPPort = {port}",
            f"MaxPDUSize = {max_pdu}",
            "MaxAssociations = 16",
            "",
            "HostTable BEGIN",
            *hosts,
            "HostTable END",
            "",
            "VendorTable BEGIN",
            "VendorTable END",
            "",
            "AETable BEGIN",
            f"{ae_title} {storage} RW (1000, 4096mb) ANY",
            "AETable END",
            "",
        ]
    )


@contextlib.asynccontextmanager
async def dcmqrscp(
    ae_title: str = "QRSCP",
    *,
    known_peers: Sequence[RemoteAE] = (),
    max_pdu: int = 65536,
    extra_args: Sequence[str] = (),
    parent_dir: Path | None = None,
) -> AsyncIterator[DicomPeer]:
    """DCMTK dcmqrscp: storage + C-FIND/C-MOVE/C-GET over its own index.

    Only the uncompressed transfer syntaxes are accepted for storage. Queries must
    follow the hierarchy strictly: a SERIES query needs the StudyInstanceUID, an
    IMAGE query the study and series UIDs. C-MOVE destinations must be in known_peers.
    It forks one process per association.
    """
    program = dcmtk_program("dcmqrscp")
    _check_ae_title(ae_title)

    def launch(ports: list[int], workdir: Path) -> list[str]:
        storage = workdir / "db"
        storage.mkdir()
        config = workdir / "dcmqrscp.cfg"
        config.write_text(_dcmqrscp_config(ports[0], ae_title, storage, known_peers, max_pdu))
        return [program, "--config", str(config), *extra_args]

    async with serve("dcmqrscp", launch, parent_dir=parent_dir) as server:
        yield DicomPeer(ae_title, server.port, server.workdir / "db", server)


# ---------------------------------------------------------------- Orthanc


@dataclass(frozen=True)
class OrthancPeer(DicomPeer):
    http_port: int = 0

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        """Call Orthanc's REST API; JSON in and out."""
        data = None if body is None else json.dumps(body).encode()

        def call() -> Any:
            request = urllib.request.Request(self.rest_url + path, data=data, method=method)
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
            return json.loads(payload) if payload else None

        return await trio.to_thread.run_sync(call)

    async def rest_get(self, path: str) -> Any:
        return await self.rest("GET", path)

    async def instance_count(self) -> int:
        return int((await self.rest_get("/statistics"))["CountInstances"])


def _orthanc_config(
    ae_title: str, dicom_port: int, http_port: int, workdir: Path, known: Sequence[RemoteAE]
) -> dict[str, Any]:
    return {
        "Name": f"triopacs-test-{ae_title}",
        "DicomAet": ae_title,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        # Orthanc aborts C-FIND/MOVE/GET from AEs it does not know, and moves only to
        # modalities listed here.
        "DicomModalities": {
            f"peer{index}": [ae.ae_title, ae.host, ae.port] for index, ae in enumerate(known)
        },
        "Plugins": [],
        "HttpCompressionEnabled": False,
        "StableAge": 1,
    }


@contextlib.asynccontextmanager
async def orthanc(
    ae_title: str = "ORTHANC",
    *,
    known_peers: Sequence[RemoteAE] = (),
    config_overrides: dict[str, Any] | None = None,
    graceful_stop: bool = False,
    parent_dir: Path | None = None,
) -> AsyncIterator[OrthancPeer]:
    """Orthanc with a private storage/index, DICOM and REST on fresh ports.

    known_peers: AEs that may query it (C-FIND/MOVE/GET from unknown AEs are aborted)
    and the destinations it may move to. Orthanc 1.10 needs ~3.5 s to stop on SIGTERM
    (its servers poll), and its storage is thrown away, so by default it is killed;
    graceful_stop=True sends SIGTERM first.
    """
    program = find_program(
        "Orthanc", "/usr/sbin/Orthanc", "/usr/bin/Orthanc", hint="Debian package orthanc"
    )
    _check_ae_title(ae_title)

    def launch(ports: list[int], workdir: Path) -> list[str]:
        config = _orthanc_config(ae_title, ports[0], ports[1], workdir, known_peers)
        config.update(config_overrides or {})
        path = workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return [program, str(path)]

    grace = 10.0 if graceful_stop else 0.0
    async with serve(
        "orthanc", launch, port_count=2, stop_grace=grace, parent_dir=parent_dir
    ) as server:
        yield OrthancPeer(
            ae_title,
            server.ports[0],
            server.workdir / "storage",
            server,
            http_port=server.ports[1],
        )


# ---------------------------------------------------------------- pynetdicom


PYNETDICOM_SCP_SCRIPT = Path(__file__).with_name("pynetdicom_scp.py")


@contextlib.asynccontextmanager
async def pynetdicom_scp(
    ae_title: str = "PYNETDICOM",
    *,
    move_destinations: Sequence[RemoteAE] = (),
    abort_on: Sequence[str] = (),
    parent_dir: Path | None = None,
) -> AsyncIterator[DicomPeer]:
    """Our small pynetdicom SCP (tests/peers/pynetdicom_scp.py) in a subprocess:
    verification, storage of every storage class in any transfer syntax, and
    patient/study root C-FIND, C-MOVE and C-GET over what it has stored. A C-STORE of a
    SOP Instance UID in `abort_on` is answered with an A-ABORT."""
    _check_ae_title(ae_title)

    def launch(ports: list[int], workdir: Path) -> list[str]:
        (workdir / "received").mkdir()
        argv = [
            sys.executable, str(PYNETDICOM_SCP_SCRIPT),
            "--port", str(ports[0]),
            "--ae-title", ae_title,
            "--storage-dir", str(workdir / "received"),
        ]
        for ae in move_destinations:
            argv += ["--move-destination", f"{ae.ae_title}={ae.host}:{ae.port}"]
        for uid in abort_on:
            argv += ["--abort-on", uid]
        return argv

    # The script prints "ready" once its server socket is bound.
    env = {"PYTHONUNBUFFERED": "1", "PYTHONDEVMODE": ""}
    async with serve("pynetdicom-scp", launch, env=env, ready_line="ready", parent_dir=parent_dir) as server:
        yield DicomPeer(ae_title, server.port, server.workdir / "received", server)


@contextlib.asynccontextmanager
async def pynetdicom_storescp_app(
    ae_title: str = "STORESCP", *, parent_dir: Path | None = None
) -> AsyncIterator[DicomPeer]:
    """pynetdicom's own `python -m pynetdicom storescp` app (used by the benchmark)."""

    def launch(ports: list[int], workdir: Path) -> list[str]:
        (workdir / "received").mkdir()
        return [
            sys.executable, "-m", "pynetdicom", "storescp", str(ports[0]),
            "--ae-title", ae_title, "--bind-address", LOOPBACK,
            "--output-directory", str(workdir / "received"),
        ]

    async with serve("pynetdicom-storescp", launch, parent_dir=parent_dir) as server:
        yield DicomPeer(ae_title, server.port, server.workdir / "received", server)
