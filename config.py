"""Node configuration: attrs sections, read from TOML, then TRIOPACS_* variables, then flags.

Every setting carries its help text, which is what `triopacs config --print-default`
prints above it. Errors name the key, the value and what is allowed.
"""

import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs

from .actors.node.ae_registry import RemoteAE
from .storage.tier_settings import TierDefinition, TierSettingError, tier_definition

ENV_PREFIX = "TRIOPACS_"
# Variables of ours that are not settings: a password for the CLI (never a config value).
NOT_SETTINGS = frozenset({"TRIOPACS_PASSWORD"})


class ConfigError(ValueError):
    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key} = {value!r}: {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed

    def under(self, section: str) -> "ConfigError":
        return ConfigError(f"{section}.{self.key}", self.value, self.allowed)


def setting(default: Any, help: str, check: Callable[[Any], str | None] | None = None, example: Any = None) -> Any:
    """A config field: its default, its help text, and a check returning what is allowed."""

    def validate(_: object, attribute: attrs.Attribute, value: Any) -> None:
        allowed = check(value) if check is not None else None
        if allowed is not None:
            raise ConfigError(attribute.name, value, allowed)

    return attrs.field(default=default, validator=validate, metadata={"help": help, "example": example})


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")  # default repertoire, no backslash


def ae_title(value: str) -> str | None:
    if _AE_TITLE.fullmatch(value) and value.strip():
        return None
    return "must be 1 to 16 printable ASCII characters, not all spaces, no backslash"


def ae_titles(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if ae_title(v) is not None]
    return f"each entry {ae_title('')}" if bad else None


@attrs.frozen(kw_only=True)
class NodeSettings:
    ae_title: str = setting("TRIOPACS", "Our AE title: peers must call it by this name.", ae_title)
    bind: str = setting("127.0.0.1", "Address the DICOM listener binds; 0.0.0.0 for every interface.")
    port: int = setting(11112, "DICOM port; 0 picks a free one (printed in the ready line).", between(0, 65535))
    data_dir: str = setting("./triopacs-data", "Where the index database and the stored files live.")
    shutdown_grace: float = setting(5.0, "Seconds actors get to finish their work on shutdown.", between(0, 600))
    workers: int = setting(
        0, "Association worker processes (all cores for DICOM networking); 0: associations run in the node's own process. `triopacs serve` defaults to one per core.", between(0, 256)
    )


@attrs.frozen(kw_only=True)
class NetworkSettings:
    max_associations: int = setting(64, "Associations served at once; more are rejected (transient, local limit exceeded).", between(1, 10000))
    calling_ae_titles: tuple[str, ...] = setting((), "Calling AE titles allowed in (empty: any).", ae_titles, example=["CT1", "VIEWER"])
    max_pdu_length: int = setting(65536, "Largest P-DATA-TF we accept (advertised to peers); it bounds the memory one PDU takes.", between(4096, 64 * 1024 * 1024))
    artim_timeout: float = setting(30.0, "Seconds to wait for an A-ASSOCIATE-RQ after connect and for the close after release/abort.", between(0.1, 3600))
    dimse_timeout: float = setting(60.0, "Seconds to wait for a DIMSE response from a peer (C-STORE sub-operations, our SCU).", between(0.1, 86400))
    idle_timeout: float = setting(300.0, "An association with no traffic for this many seconds is aborted.", between(0.1, 86400))
    max_waiting_connections: int = setting(256, "Connections that have not sent their A-ASSOCIATE-RQ yet; one more closes the oldest of them.", between(1, 100_000))
    max_waiting_per_address: int = setting(32, "The same, per peer address (one address cannot fill the whole allowance).", between(1, 100_000))
    min_peer_pdu_length: int = setting(1024, "A peer announcing a smaller maximum PDU length is rejected (permanent, no reason given); 0 (unlimited) is fine.", between(8, 65536))
    max_sequence_depth: int = setting(64, "Sequences nested deeper than this in a received dataset or identifier are refused (C000 / A900).", between(1, 200))
    max_inflated_bytes: int = setting(1 << 30, "A deflated dataset that inflates past this many bytes is refused (C000).", between(1 << 20, 1 << 40))


def tls_version(value: str) -> str | None:
    return None if value in ("1.2", "1.3") else "must be 1.2 or 1.3 (older versions are never offered)"


@attrs.frozen(kw_only=True)
class TlsSettings:
    enabled: bool = setting(False, "Serve DICOM over TLS (PS3.15 Annex B, BCP 195) on tls.port, beside the plain port unless plain_port is false.")
    port: int = setting(2762, "DICOM TLS port (2762 is the registered one); 0 picks a free one.", between(0, 65535))
    plain_port: bool = setting(True, "Keep the plain TCP port [node] port open too; false: only TLS is served.")
    cert_file: str = setting("", "PEM file with our certificate (and its chain): presented to peers, and to TLS [[remote]]s as our client certificate.", example="/etc/triopacs/node.pem")
    key_file: str = setting("", "PEM file with the private key of cert_file.", example="/etc/triopacs/node.key")
    ca_file: str = setting("", "PEM file of the CAs whose certificates we trust: client certificates are checked against it, and TLS [[remote]]s' server certificates.", example="/etc/triopacs/ca.pem")
    require_client_certificate: bool = setting(False, "Mutual authentication: refuse a TLS client that presents no certificate signed by ca_file.")
    min_version: str = setting("1.2", "Oldest TLS version accepted: 1.2 or 1.3.", tls_version)
    handshake_timeout: float = setting(10.0, "Seconds a client gets to finish the TLS handshake; a slower one is closed.", between(0.1, 600))
    check_hostname: bool = setting(True, "As a client, check that a TLS [[remote]]'s certificate names its host.")


@attrs.frozen(kw_only=True)
class AccessSettings:
    enabled: bool = setting(
        False, "Check every association against the AE rules and users of <data>/security.sqlite (`triopacs ae`, `triopacs user`), "
        "and every admin API request against the users. Off: anyone may do anything, as before (calling_ae_titles still applies).",
    )
    unknown_ae: str = setting(
        "reject", "A calling AE title with no rule: reject it (calling AE not recognized), or admit it when it proves a user identity.",
        one_of("reject", "identity"),
    )
    accept_username_only: bool = setting(False, "Trust a user identity that names a user without a passcode (type 1); off: a passcode is needed.")
    open_probes: bool = setting(True, "/live, /ready, /health and /metrics answer without credentials (monitoring); false: they need a user too.")


@attrs.frozen(kw_only=True)
class AuditSettings:
    enabled: bool = setting(False, "Keep a tamper-evident audit trail (DICOM audit vocabulary, hash-chained JSON lines) in <data>/audit/ (or path).")
    path: str = setting("", "The audit trail's current file; empty: <data>/audit/audit.jsonl. Rotated files sit beside it.")
    sync: str = setting(
        "fsync", "fsync: a record is on disk before the operation it records is answered (many records share one fsync); "
        "os: the operating system writes it when it likes.", one_of("fsync", "os"),
    )
    rotate_bytes: int = setting(64 * 1024 * 1024, "The file is rotated when it passes this size; the chain continues in the next one.", between(4096, 1 << 40))


@attrs.frozen(kw_only=True)
class StorageSettings:
    layout: str = setting("uid", "Where files go: uid (Study/Series/SOP UID folders) or date (YYYY/MM/DD of the study).", one_of("uid", "date"))
    duplicates: str = setting("replace", "A SOP instance received again: replace it, reject it (failure 0111), or ignore it (success, kept as is).", one_of("replace", "reject", "ignore"))
    transfer_syntaxes: tuple[str, ...] = setting(
        (), "Transfer syntaxes accepted, in order of preference (empty: every one pydicom knows, uncompressed first).",
        example=["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"],
    )
    durability: str = setting(
        "fsync",
        "fsync: a store is answered only once its file, directory entry and index row are on disk (survives a power cut); "
        "os: the operating system writes them when it likes, as DCMTK's storescp and Orthanc do - faster, but a power cut can lose the last stores.",
        one_of("fsync", "os"),
    )


@attrs.frozen(kw_only=True)
class QuerySettings:
    patient_level_in_study_root: bool = setting(
        True,
        "Serve a Study Root C-MOVE/C-GET at QueryRetrieveLevel PATIENT (Orthanc sends them to move a patient) "
        "as the Patient Root one it means; false refuses it (A900), as the standard would.",
    )


@attrs.frozen(kw_only=True)
class LogSettings:
    level: str = setting("info", "Least severe level logged.", one_of("debug", "info", "warning", "error", "critical"))
    format: str = setting("auto", "console (human), json (one object a line), or auto: console on a TTY.", one_of("auto", "console", "json"))


@attrs.frozen(kw_only=True)
class TraceSettings:
    file: str = setting("", "Record every delivered message to this JSON-lines file (empty: off).", example="triopacs-trace.jsonl")


@attrs.frozen(kw_only=True)
class LockSettings:
    default_timeout: float = setting(0.0, "Seconds a study lock lives when its taker names no lifetime (0: until released).", between(0, 365 * 86400))
    acquire_wait_timeout: float = setting(5.0, "Seconds a lock request waits for a conflicting lock to go before it fails.", between(0, 86400))
    cleanup_interval: float = setting(60.0, "Seconds between sweeps of expired locks and checks for holders that are gone.", between(0.1, 86400))
    auto_cleanup: bool = setting(True, "Sweep expired locks every cleanup_interval (false: only on request).")
    max_shared_locks: int = setting(100, "Readers that may hold one study's shared lock at the same time.", between(1, 1_000_000))
    allow_force_unlock: bool = setting(True, "Allow an administrator to force a study's locks open (logged as a warning).")


def time_zone_name(value: str) -> str | None:
    if value == "UTC":
        return None  # needs no time zone database
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return "must be an IANA time zone such as UTC or Europe/Berlin (is the tz database installed?)"
    return None


@attrs.frozen(kw_only=True)
class SchedulerSettings:
    enabled: bool = setting(True, "Run the task scheduler; without it no task runs, built-in or other.")
    max_concurrent_tasks: int = setting(4, "Tasks that may run at once; more due tasks wait, highest priority first.", between(1, 1000))
    timezone: str = setting("UTC", "IANA time zone cron schedules are read in (e.g. Europe/Berlin).", time_zone_name)
    restore_on_startup: bool = setting(True, "Load scheduled tasks and their history from the index database at start.")
    history_limit: int = setting(100, "Executions kept per task (in memory and in the database).", between(1, 100_000))


# Checked without importing the workflow package (and croniter) when the value is a
# default: every Config() checks its defaults, and the CLI should not pay for that at
# start. tests/workflow checks that the defaults parse.
DEFAULT_CLEANUP_SCHEDULE = "0 2 * * *"  # the seed's cleanup_schedule: daily at 02:00
DEFAULT_VERIFICATION_SCHEDULE = "0 4 * * 0"  # Sundays at 04:00 (the seed's hour, weekly)
DEFAULT_MIGRATION_SCHEDULE = "every 1h"


def schedule_text(value: str) -> str | None:
    if value in (DEFAULT_CLEANUP_SCHEDULE, DEFAULT_VERIFICATION_SCHEDULE, DEFAULT_MIGRATION_SCHEDULE):
        return None
    from .workflow.tasks.schedule_text import parse_schedule_text

    try:
        parse_schedule_text(value)
    except ValueError as error:
        return f"must be a cron expression ('0 2 * * *') or an interval ('every 6h'): {error}"
    return None


_MODALITY = re.compile(r"[A-Za-z0-9_]{1,16}")


def retention_days(values: dict[str, int]) -> str | None:
    for modality, days in values.items():
        if not _MODALITY.fullmatch(modality):
            return f"{modality!r} is not a modality code (letters, digits, _; at most 16)"
        if not 1 <= days <= 36500:
            return f"the retention of {modality} must be between 1 and 36500 days"
    return None


def patterns(values: tuple[str, ...]) -> str | None:
    return "each pattern must be non-empty" if any(not value for value in values) else None


@attrs.frozen(kw_only=True)
class CleanupSettings:
    enabled: bool = setting(False, "Delete studies whose retention has run out. Off unless you turn it on: it deletes data.")
    schedule: str = setting(DEFAULT_CLEANUP_SCHEDULE, "When cleanup runs: cron in [scheduler] timezone, or an interval like 'every 6h'.", schedule_text)
    default_retention: int = setting(365, "Days a study is kept, counted from when its newest instance arrived here.", between(1, 36500))
    modality_retention: dict[str, int] = setting(
        {}, "Days per modality; of a study's modalities listed here the longest applies, if none default_retention.",
        retention_days, example={"CT": 1825, "MR": 3650},
    )
    exclude_patterns: tuple[str, ...] = setting(
        (), "Studies never deleted: shell patterns on patient ID, study UID, accession or description (or field:pattern).",
        patterns, example=["VIP*", "description:*RESEARCH*"],
    )
    verify_not_locked: bool = setting(True, "Skip studies someone has locked; false waits for them up to [locks] acquire_wait_timeout.")
    dry_run: bool = setting(False, "Only report what would be deleted; delete nothing.")
    max_deletions_per_cycle: int = setting(100, "Studies deleted per run at most; the rest wait for the next run.", between(1, 1_000_000))
    database_only: bool = setting(False, "Remove studies from the index but leave their files on disk.")


@attrs.frozen(kw_only=True)
class VerificationSettings:
    enabled: bool = setting(True, "Check stored files against the index on schedule; it changes nothing unless repair_on_failure.")
    schedule: str = setting(DEFAULT_VERIFICATION_SCHEDULE, "When verification runs: cron in [scheduler] timezone, or an interval like 'every 24h'.", schedule_text)
    check_checksums: bool = setting(True, "Recompute size and SHA-256 of the files checked and compare them with the index.")
    check_db_consistency: bool = setting(True, "Look for index rows whose file is gone and files under files/ no row knows.")
    check_dicom_structure: bool = setting(False, "Also parse the files checked completely and compare their UIDs with the index.")
    repair_on_failure: bool = setting(False, "Re-index orphan files and flag missing or corrupt ones in the index; never deletes.")
    max_verifications_per_cycle: int = setting(1000, "Files whose content is checked per run, least recently checked first.", between(1, 1_000_000_000))
    hash_algorithm: str = setting("SHA256", "Checksum algorithm; the index keeps SHA-256, the only one supported.", one_of("SHA256"))


@attrs.frozen(kw_only=True)
class WorklistSettings:
    expire_after_hours: float = setting(
        24.0, "Hours after its scheduled start a worklist item is no longer offered to modalities (and is deleted by the expiry task).",
        between(0.01, 24 * 3650),
    )
    expiry_enabled: bool = setting(True, "Delete expired worklist items on schedule (else only when items are added).")
    expiry_schedule: str = setting("every 1h", "When expired worklist items are deleted: cron in [scheduler] timezone, or an interval.", schedule_text)


@attrs.frozen(kw_only=True)
class CommitmentSettings:
    retry_initial: float = setting(
        10.0, "Seconds before a storage commitment report that could not be delivered is tried again; doubled after each failure.",
        between(0.1, 86400),
    )
    retry_max: float = setting(3600.0, "The longest wait between two attempts to deliver a report.", between(0.1, 7 * 86400))
    max_attempts: int = setting(50, "Attempts to deliver a report before it is given up (logged as an error).", between(1, 1_000_000))


@attrs.frozen(kw_only=True)
class HsmSettings:
    enabled: bool = setting(False, "Move instances between storage tiers by last access (the built-in migration task).")
    schedule: str = setting(DEFAULT_MIGRATION_SCHEDULE, "When a migration cycle runs: cron in [scheduler] timezone, or an interval.", schedule_text)
    warm_tier: str = setting("", "The [[tier]] instances leave the hot tier (the data directory) for; empty: none.")
    cold_tier: str = setting("", "The [[tier]] instances leave the warm tier for; empty: none.")
    hot_to_warm: float = setting(30.0, "Days since last access after which a hot instance moves to warm_tier.", between(0, 36500))
    warm_to_cold: float = setting(90.0, "Days since last access after which a warm instance moves to cold_tier.", between(0, 36500))
    min_size: int = setting(0, "Instances smaller than this many bytes stay where they are.", between(0, 2**62))
    max_instances_per_cycle: int = setting(1000, "Instances moved per cycle at most.", between(1, 10_000_000))
    max_bytes_per_cycle: int = setting(10 * 1024**3, "Bytes moved per cycle at most.", between(1, 2**62))
    max_concurrent_migrations: int = setting(4, "Instances copied at once.", between(1, 256))
    delete_after_migration: bool = setting(True, "Remove the source copy once the index names the new one.")
    track_access_time: bool = setting(True, "Record each C-GET/C-MOVE of an instance as an access (batched per request).")


@attrs.frozen(kw_only=True)
class ArchiveSettings:
    enabled: bool = setting(False, "Copy old studies to an archive tier as packages (the built-in archive task).")
    schedule: str = setting(DEFAULT_CLEANUP_SCHEDULE, "When archiving runs: cron in [scheduler] timezone, or an interval.", schedule_text)
    destination: str = setting("", "The [[tier]] packages are written to (archive/<StudyUID>/ with a manifest).")
    archive_after: float = setting(365.0, "Days since a study's newest instance arrived after which it is archived.", between(0, 36500))
    max_archives_per_cycle: int = setting(10, "Studies archived per run at most.", between(1, 1_000_000))
    delete_after_archive: bool = setting(False, "Delete an archived study here (only a study wholly in the data directory).")


@attrs.frozen(kw_only=True)
class PrefetchSourceSettings:
    """One [[prefetch.source]]: a [[remote]] the prefetcher queries and retrieves from."""

    remote: str
    retrieve: str = "move"


def _prefetch_sources(entries: tuple[PrefetchSourceSettings, ...]) -> str | None:
    for entry in entries:
        if entry.retrieve not in ("move", "get"):
            return f"retrieve of {entry.remote} must be move (C-MOVE to our AE) or get (C-GET)"
    names = [e.remote for e in entries]
    if len(set(names)) != len(names):
        return "each remote may be a source once"
    return None


@attrs.frozen(kw_only=True)
class PrefetchSettings:
    enabled: bool = setting(False, "Prefetch prior studies of worklist patients from the [[prefetch.source]] PACS.")
    source: tuple[PrefetchSourceSettings, ...] = setting(
        (), "Where priors come from, in order: remote names a [[remote]] (which must know our AE as a move destination); "
        "retrieve is move (C-MOVE to our AE) or get (C-GET).", _prefetch_sources,
        example=[{"remote": "MAINPACS", "retrieve": "move"}],
    )
    on_worklist_query: bool = setting(True, "Queue the patients of every Modality Worklist query the node answers.")
    on_worklist_change: bool = setting(True, "Queue the patient of every worklist item added or replaced.")
    requeue_after: float = setting(
        3600.0, "Seconds after a patient's prefetch ends during which worklist queries and periodic cycles do not queue it again "
        "(modalities poll the worklist; items added and `triopacs prefetch` always queue).", between(0, 30 * 86400),
    )
    cycle_interval: float = setting(300.0, "Seconds between periodic cycles over the items scheduled in the next lookahead_hours (0: none).", between(0, 7 * 86400))
    lookahead_hours: float = setting(24.0, "A periodic cycle queues the patients of items scheduled to start within this many hours.", between(0, 24 * 365))
    lookback_days: int = setting(365, "Priors are studies of the last this many days (StudyDate).", between(1, 36500))
    max_studies_per_patient: int = setting(10, "Priors prefetched per patient at most, preferred and newest first.", between(1, 10_000))
    max_series_per_study: int = setting(0, "Series retrieved per prior at most, preferred first (0: every series).", between(0, 100_000))
    include_modalities: tuple[str, ...] = setting((), "Only priors with one of these modalities (empty: any).", example=["CT", "MR"])
    exclude_modalities: tuple[str, ...] = setting((), "Never priors (or series) of only these modalities.", example=["SR", "PR"])
    include_body_parts: tuple[str, ...] = setting((), "Only priors with a series of one of these body parts (empty: any).", example=["CHEST"])
    prefer_same_modality: bool = setting(True, "Priors of the scheduled modality come first (before max_studies_per_patient cuts).")
    prefer_same_body_part: bool = setting(True, "Then priors of the scheduled body part (asks each source for the series of each prior).")
    max_concurrent_prefetches: int = setting(4, "Queries and retrievals running at once.", between(1, 256))
    rate_limit_per_minute: float = setting(0.0, "Associations opened to one source per minute at most, evenly spaced (0: no limit).", between(0, 60_000))
    max_retry_attempts: int = setting(3, "Times a query or retrieval that failed for a reason that may pass is tried again.", between(0, 1000))
    retry_delay: float = setting(60.0, "Seconds before such a retry.", between(0, 86400))
    max_find_matches: int = setting(1000, "C-FIND answers read per query (and series per patient); a source answering more is cut off.", between(1, 1_000_000))
    operation_timeout: float = setting(600.0, "Seconds one query or retrieval (one association) may take in all.", between(1, 86400))
    connect_timeout: float = setting(10.0, "Seconds to wait for a source's TCP connection.", between(0.1, 3600))


def _tier_entries(entries: tuple[TierDefinition, ...]) -> str | None:
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        return "each tier name may appear once"
    return None


def _remote_entries(entries: tuple[RemoteAE, ...]) -> str | None:
    for entry in entries:
        if ae_title(entry.ae_title) is not None:
            return f"remote AE title {entry.ae_title!r} {ae_title(entry.ae_title)}"
        if not 1 <= entry.port <= 65535:
            return f"port of {entry.ae_title} must be between 1 and 65535"
    titles = [e.ae_title for e in entries]
    if len(set(titles)) != len(titles):
        return "each AE title may appear once"
    return None


@attrs.frozen(kw_only=True)
class HttpSettings:
    enabled: bool = setting(True, "Serve the admin API, probes, metrics and status page (false: no HTTP at all).")
    bind: str = setting("127.0.0.1", "Address the HTTP server and the event stream bind; keep it on loopback unless a proxy guards it.")
    port: int = setting(8042, "HTTP port of the admin API, probes, /metrics and the status page; 0 picks a free one.", between(0, 65535))
    events_port: int = setting(8043, "WebSocket port of the live event stream (ws://bind:events_port/events); 0 picks a free one.", between(0, 65535))
    max_connections: int = setting(64, "HTTP connections open at once; one more closes the oldest.", between(1, 10000))
    keep_alive_timeout: float = setting(5.0, "Seconds an idle HTTP connection stays open.", between(0.1, 3600))
    request_timeout: float = setting(10.0, "Seconds a client gets to send a whole request head; a slower one is closed.", between(0.1, 3600))
    max_request_head: int = setting(16384, "Bytes of an HTTP request head (request line and headers); a larger one is refused.", between(1024, 1 << 20))
    max_event_clients: int = setting(32, "Event stream clients at once; one more is refused (HTTP 503).", between(1, 10000))
    event_buffer: int = setting(256, "Events queued for one stream client; a client that falls this far behind is closed (code 4008).", between(1, 100_000))


def url_prefix(value: str) -> str | None:
    if value.startswith("/") and not value.endswith("/") and len(value) > 1 and " " not in value:
        return None
    return "must start with / and not end with one (e.g. /dicom-web)"


def origins(values: tuple[str, ...]) -> str | None:
    for value in values:
        if value != "*" and not re.fullmatch(r"https?://[^/\s]+", value):
            return f"{value!r} is not an origin (scheme://host[:port]) or *"
    return None


@attrs.frozen(kw_only=True)
class DicomWebSettings:
    enabled: bool = setting(True, "Serve DICOMweb (QIDO-RS, WADO-RS, STOW-RS) on the HTTP server, under prefix.")
    prefix: str = setting("/dicom-web", "URL path DICOMweb is served under (the base URL clients are given ends with it).", url_prefix)
    public_url: str = setting(
        "", "Base URL clients reach DICOMweb at through a proxy (https://pacs.example.org/dicom-web); empty: from each request's Host.",
        lambda v: None if v == "" or re.fullmatch(r"https?://[^\s]+[^/]", v) else "must be empty or an http(s) URL without a trailing /",
    )
    cors_origins: tuple[str, ...] = setting(
        (), "Origins whose browser pages may call DICOMweb (CORS); * for any; empty: no CORS headers.", origins,
        example=["https://viewer.example.org"],
    )
    bulk_data_threshold: int = setting(
        1024, "In WADO-RS metadata, binary values and text values longer than this many bytes are given as a BulkDataURI.", between(0, 1 << 30)
    )
    max_results: int = setting(1000, "Most matches one QIDO-RS answer holds (limit may ask for fewer; more are cut, with a Warning).", between(1, 1_000_000))
    max_part_bytes: int = setting(
        4 << 30, "Largest instance one STOW-RS part may carry; a larger one ends the request with 413.", between(1024, 1 << 40)
    )


@attrs.frozen(kw_only=True)
class Config:
    node: NodeSettings = NodeSettings()
    network: NetworkSettings = NetworkSettings()
    tls: TlsSettings = TlsSettings()
    access: AccessSettings = AccessSettings()
    audit: AuditSettings = AuditSettings()
    storage: StorageSettings = StorageSettings()
    query: QuerySettings = QuerySettings()
    log: LogSettings = LogSettings()
    trace: TraceSettings = TraceSettings()
    locks: LockSettings = LockSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    cleanup: CleanupSettings = CleanupSettings()
    verification: VerificationSettings = VerificationSettings()
    worklist: WorklistSettings = WorklistSettings()
    commitment: CommitmentSettings = CommitmentSettings()
    hsm: HsmSettings = HsmSettings()
    archive: ArchiveSettings = ArchiveSettings()
    prefetch: PrefetchSettings = PrefetchSettings()
    http: HttpSettings = HttpSettings()
    dicomweb: DicomWebSettings = DicomWebSettings()
    remote: tuple[RemoteAE, ...] = setting(
        (), "Remote AEs we may send to (C-MOVE destinations, storage commitment requestors).", _remote_entries,
        example=[{"ae_title": "VIEWER", "host": "127.0.0.1", "port": 11113}],
    )
    tier: tuple[TierDefinition, ...] = setting(
        (), "Storage tiers besides the data directory (kind local, s3 or azure).", _tier_entries,
        example=[{"name": "warm", "kind": "local", "path": "/mnt/warm"}, {"name": "cold", "kind": "s3", "bucket": "pacs-cold", "prefix": "cold/"}],
    )

    def __attrs_post_init__(self) -> None:
        names = {t.name for t in self.tier}
        for section, key in (("hsm", "warm_tier"), ("hsm", "cold_tier"), ("archive", "destination")):
            value = getattr(getattr(self, section), key)
            if value and value not in names:
                raise ConfigError(f"{section}.{key}", value, f"must name a [[tier]] ({', '.join(sorted(names)) or 'none configured'})")
        remotes = {r.ae_title for r in self.remote}
        for source in self.prefetch.source:
            if source.remote not in remotes:
                raise ConfigError("prefetch.source", source.remote, f"must name a [[remote]] ({', '.join(sorted(remotes)) or 'none configured'})")
        if self.prefetch.enabled and not self.prefetch.source:
            raise ConfigError("prefetch.source", [], "must name at least one [[remote]] when [prefetch] is enabled")
        if self.tls.enabled and not (self.tls.cert_file and self.tls.key_file):
            raise ConfigError("tls.cert_file", self.tls.cert_file, "TLS needs cert_file and key_file")
        if self.tls.require_client_certificate and not self.tls.ca_file:
            raise ConfigError("tls.ca_file", "", "must name the CAs to check client certificates against when require_client_certificate is true")
        if self.archive.enabled and not self.archive.destination:
            raise ConfigError("archive.destination", "", "must name a [[tier]] when [archive] is enabled")

    @property
    def data_dir(self) -> Path:
        return Path(self.node.data_dir)


T = TypeVar("T")


def from_section(cls: type[T], section: object, **more: Any) -> T:
    """An instance of `cls` (a component's own settings class) from the config section
    whose fields carry the same names; `more` fills the fields the section lacks. Every
    field of `cls` must be found: a name changed on one side fails at start, not later."""
    values = {}
    for field in attrs.fields(cls):
        if field.name in more:
            values[field.name] = more[field.name]
        elif hasattr(section, field.name):
            values[field.name] = getattr(section, field.name)
        else:
            raise TypeError(f"{cls.__name__}.{field.name} has no setting in {type(section).__name__}")
    return cls(**values)


SECTIONS: dict[str, type] = {f.name: f.type for f in attrs.fields(Config) if attrs.has(f.type)}

# cattrs would turn "false" into True and 1.5 into 1; settings must be what they say.
_strict = cattrs.Converter()


def _exactly(kind: type) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(kind.__name__)
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise TypeError(kind.__name__)
        return value

    return structure


for _kind in (int, float, bool, str):
    _strict.register_structure_hook(_kind, _exactly(_kind))

_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    tuple[str, ...]: "a list of strings",
    dict[str, int]: "a table of names and integers",
    tuple[PrefetchSourceSettings, ...]: "an array of tables ([[prefetch.source]]) with remote and retrieve",
}


def _prefetch_source(value: Any, _: type) -> PrefetchSourceSettings:
    if not isinstance(value, Mapping) or "remote" not in value or set(value) - {"remote", "retrieve"}:
        raise TypeError("source")
    return PrefetchSourceSettings(**{key: _strict.structure(v, str) for key, v in value.items()})


_strict.register_structure_hook(PrefetchSourceSettings, _prefetch_source)


def _structure_field(key: str, value: Any, kind: Any) -> Any:
    try:
        return _strict.structure(value, kind)
    except Exception:
        raise ConfigError(key, value, f"must be {_KIND_NAMES.get(kind, 'a list of tables with ae_title, host and port')}") from None


def _structure_section(name: str, cls: type, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(name, data, "must be a table")
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", data[unknown[0]], f"unknown key; known keys are {', '.join(fields)}")
    values = {key: _structure_field(f"{name}.{key}", value, fields[key].type) for key, value in data.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise error.under(name) from None


def from_mapping(data: Mapping[str, Any]) -> Config:
    """Build a Config from parsed TOML (sections as tables, `remote` as an array of tables)."""
    known = set(SECTIONS) | {"remote", "tier"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(unknown[0], data[unknown[0]], f"unknown section; known sections are {', '.join(sorted(known))}")
    sections = {name: _structure_section(name, cls, data.get(name, {})) for name, cls in SECTIONS.items()}
    remotes = data.get("remote", [])
    if not isinstance(remotes, list) or not all(isinstance(r, Mapping) for r in remotes):
        raise ConfigError("remote", remotes, "must be an array of tables ([[remote]])")
    entries = []
    for index, entry in enumerate(remotes):
        missing = {"ae_title", "host", "port"} - set(entry)
        extra = set(entry) - {"ae_title", "host", "port", "tls"}
        if missing or extra:
            raise ConfigError(f"remote[{index}]", dict(entry), "needs ae_title, host and port (and may say tls = true)")
        entries.append(
            RemoteAE(
                ae_title=_structure_field(f"remote[{index}].ae_title", entry["ae_title"], str),
                host=_structure_field(f"remote[{index}].host", entry["host"], str),
                port=_structure_field(f"remote[{index}].port", entry["port"], int),
                tls=_structure_field(f"remote[{index}].tls", entry.get("tls", False), bool),
            )
        )
    tiers = data.get("tier", [])
    if not isinstance(tiers, list) or not all(isinstance(t, Mapping) for t in tiers):
        raise ConfigError("tier", tiers, "must be an array of tables ([[tier]])")
    definitions = []
    for index, entry in enumerate(tiers):
        try:
            definitions.append(tier_definition(f"tier[{index}]", entry))
        except TierSettingError as error:
            raise ConfigError(error.key, error.value, error.allowed) from None
    try:
        return Config(**sections, remote=tuple(entries), tier=tuple(definitions))
    except ConfigError as error:
        raise error from None


def _from_env_text(key: str, text: str, kind: type) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, text, "must be true or false")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(key, text, f"must be {_KIND_NAMES[kind]}") from None
    if kind == tuple[str, ...]:
        return [part.strip() for part in text.split(",") if part.strip()]  # comma-separated
    if kind == dict[str, int]:
        return _table_from_env(key, text)  # CT=1825,MR=3650
    return text


def _table_from_env(key: str, text: str) -> dict[str, int]:
    table: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, number = item.partition("=")
        try:
            if not equals:
                raise ValueError(item)
            table[name.strip()] = int(number)
        except ValueError:
            raise ConfigError(key, text, "must be name=integer pairs separated by commas (CT=1825,MR=3650)") from None
    return table


def environment_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """TRIOPACS_<SECTION>_<KEY> variables as a partial mapping, e.g. TRIOPACS_NODE_PORT."""
    result: dict[str, dict[str, Any]] = {}
    for variable, text in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable in NOT_SETTINGS:
            continue
        rest = variable[len(ENV_PREFIX):].lower()
        for section, cls in SECTIONS.items():
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1:]
                fields = {f.name: f.type for f in attrs.fields(cls)}
                if key not in fields:
                    raise ConfigError(variable, text, f"unknown setting; known for [{section}]: {', '.join(fields)}")
                result.setdefault(section, {})[key] = _from_env_text(variable, text, fields[key])
                break
        else:
            raise ConfigError(variable, text, f"unknown section; variables look like {ENV_PREFIX}NODE_PORT")
    return result


def merge(base: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    merged = {key: (dict(value) if isinstance(value, Mapping) else value) for key, value in base.items()}
    for section, values in overrides.items():
        target = merged.setdefault(section, {})
        if isinstance(target, dict):
            target.update(values)
    return merged


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """The effective config: `defaults` (a program's own, e.g. `serve`'s worker count),
    then the file, then environment, then explicit overrides (CLI flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except FileNotFoundError:
            raise ConfigError("--config", str(path), "no such file") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError("--config", str(path), f"not valid TOML ({error})") from None
    for section, values in (defaults or {}).items():
        present = data.setdefault(section, {})
        if isinstance(present, dict):
            for key, value in values.items():
                present.setdefault(key, value)
    data = merge(data, environment_overrides(os.environ if environ is None else environ))
    data = merge(data, overrides or {})
    return from_mapping(data)
