"""One study as an administrator sees it: who, when, what, how much, and where its
instances are (per storage tier). A plain function of a connection, like the index's
other reads; the index actor runs it on its reader thread."""

from __future__ import annotations

import sqlite3

import attrs


@attrs.frozen(kw_only=True)
class StudyView:
    study_instance_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    study_description: str
    accession_number: str
    modalities: tuple[str, ...]
    series: int
    instances: int
    bytes: int
    tiers: dict[str, int]  # tier name -> instances held there
    first_stored_at: float
    last_stored_at: float


def study_view(connection: sqlite3.Connection, study_uid: str) -> StudyView | None:
    """The study with this UID, or None when the index has no such study."""
    head = connection.execute(
        """
        SELECT st.pk, p.patient_id, coalesce(p.patient_name, ''), coalesce(st.study_date, ''),
               coalesce(st.study_description, ''), coalesce(st.accession_number, '')
        FROM study st JOIN patient p ON p.pk = st.patient_pk
        WHERE st.study_instance_uid = ?
        """,
        (study_uid,),
    ).fetchone()
    if head is None:
        return None
    pk, patient_id, patient_name, study_date, description, accession = head
    modalities = [m for (m,) in connection.execute("SELECT DISTINCT modality FROM series WHERE study_pk = ? AND modality IS NOT NULL", (pk,))]
    series = connection.execute("SELECT count(*) FROM series WHERE study_pk = ?", (pk,)).fetchone()[0]
    tiers: dict[str, int] = {}
    instances = size = 0
    first, last = float("inf"), 0.0
    for tier, count, total, earliest, latest in connection.execute(
        """
        SELECT i.tier, count(*), coalesce(sum(i.file_size), 0), min(i.stored_at), max(i.stored_at)
        FROM instance i JOIN series se ON se.pk = i.series_pk
        WHERE se.study_pk = ? GROUP BY i.tier
        """,
        (pk,),
    ):
        tiers[tier] = count
        instances, size = instances + count, size + total
        first, last = min(first, earliest), max(last, latest)
    return StudyView(
        study_instance_uid=study_uid, patient_id=patient_id, patient_name=patient_name, study_date=study_date,
        study_description=description, accession_number=accession, modalities=tuple(sorted(modalities)),
        series=series, instances=instances, bytes=size, tiers=tiers,
        first_stored_at=first if instances else 0.0, last_stored_at=last,
    )
