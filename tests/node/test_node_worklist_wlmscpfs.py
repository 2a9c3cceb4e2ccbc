"""The same worklist served by triopacs and by DCMTK's wlmscpfs (items written as .wl
files for it), asked the same `findscu -W` queries - keys given with -k and as query
files - in one test: both must return the same items (by Scheduled Procedure Step ID)
with the same values for the keys asked. Where the two legitimately differ, the query
says so and why (EXPECTED_DIFFERENCES)."""

import datetime as dt

from peers import findscu_worklist, wlmscpfs, write_worklist_file
from pydicom import dcmread
from pydicom.dataset import Dataset

from triopacs.actors.node.index_dimse_n import AddWorklistItems
from triopacs.storage.worklist import item_from_dataset

from .nodes import peer, running_node

DAY1 = (dt.date.today() + dt.timedelta(days=1)).strftime("%Y%m%d")
DAY2 = (dt.date.today() + dt.timedelta(days=2)).strftime("%Y%m%d")


def item(n: int, name: str, modality: str, station: str, date: str, time: str, physician: str = "Who^Doctor") -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID = name, f"PAT{n}"
    ds.PatientBirthDate, ds.PatientSex = f"19{50 + n}0101", "FM"[n % 2]
    ds.AccessionNumber, ds.RequestedProcedureID = f"ACC{n}", f"RP{n}"
    ds.RequestedProcedureDescription = f"procedure {n}"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.9.8.{n}"
    ds.ReferringPhysicianName = "Ref^Erin"
    step = Dataset()
    step.Modality, step.ScheduledStationAETitle = modality, station
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = date, time
    step.ScheduledProcedureStepID, step.ScheduledProcedureStepDescription = f"SPS{n}", f"step {n}"
    step.ScheduledPerformingPhysicianName = physician
    ds.ScheduledProcedureStepSequence = [step]
    return ds


ITEMS = [
    item(1, "Doe^Jane", "CT", "CT1", DAY1, "080000"),
    item(2, "Roe^Richard", "MR", "MR1", DAY1, "093000", "House^Greg"),
    item(3, "Müller^Jürgen", "CT", "CT1", DAY1, "140000"),
    item(4, "Doe^John", "US", "US1", DAY2, "071500"),
    item(5, "Smith^Anna", "CT", "CT2", DAY2, "163000", "House^Greg"),
    item(6, "Åström^Björn", "MR", "MR1", DAY2, "110000"),
]

STEP = "ScheduledProcedureStepSequence[0]"
# What every query asks back besides its own keys.
RETURNED = ("PatientName", "PatientID", f"{STEP}.ScheduledProcedureStepID", f"{STEP}.Modality")

# name -> (-k keys, or a Dataset written as a query file)
QUERIES: dict[str, dict[str, str] | Dataset] = {
    "everything": {},
    "patient id": {"PatientID": "PAT2"},
    "name with trailing *": {"PatientName": "Doe*"},
    "name with ?": {"PatientName": "R?e^Richard"},
    "accession number": {"AccessionNumber": "ACC3"},
    "requested procedure id": {"RequestedProcedureID": "RP5"},
    "modality": {f"{STEP}.Modality": "CT"},
    "station AE title": {f"{STEP}.ScheduledStationAETitle": "MR1"},
    "single date": {f"{STEP}.ScheduledProcedureStepStartDate": DAY2},
    "date range": {f"{STEP}.ScheduledProcedureStepStartDate": f"{DAY1}-{DAY2}"},
    "open date range": {f"{STEP}.ScheduledProcedureStepStartDate": f"-{DAY1}"},
    "date and time range": {
        f"{STEP}.ScheduledProcedureStepStartDate": DAY1,
        f"{STEP}.ScheduledProcedureStepStartTime": "070000-100000",
    },
    "performing physician": {f"{STEP}.ScheduledPerformingPhysicianName": "House^Greg"},
    "modality and date": {f"{STEP}.Modality": "MR", f"{STEP}.ScheduledProcedureStepStartDate": DAY2},
    "nothing matches": {f"{STEP}.Modality": "NM"},
    "patient sex and birth date range": {"PatientSex": "M", "PatientBirthDate": "19500101-19531231"},
}


def query_file(**step_keys: str) -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
    ds.StudyInstanceUID, ds.RequestedProcedureDescription = "", ""
    step = Dataset()
    for keyword in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                    "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID", "ScheduledProcedureStepDescription"):
        setattr(step, keyword, step_keys.get(keyword, ""))
    ds.ScheduledProcedureStepSequence = [step]
    return ds


QUERIES["file: all keys"] = query_file()
QUERIES["file: CT on CT1"] = query_file(Modality="CT", ScheduledStationAETitle="CT1")
QUERIES["file: station wildcard"] = query_file(ScheduledStationAETitle="MR*")
QUERIES["file: step id"] = query_file(ScheduledProcedureStepID="SPS4")


# name -> (why, step ids wlmscpfs returns, step ids triopacs returns)
EXPECTED_DIFFERENCES = {
    "file: station wildcard": (
        "PS3.4 C.2.2.2.4 allows wildcards in AE values; wlmscpfs 3.6.7 matches Scheduled "
        "Station AE Title by single value only, so 'MR*' finds nothing there",
        [], ["SPS2", "SPS6"],
    ),
    "file: step id": (
        "Scheduled Procedure Step ID is an optional matching key (PS3.4 Table K.6-1); "
        "wlmscpfs does not match on it (its man page lists its matching keys) and treats "
        "it as a return key, so it returns every item; triopacs matches it",
        ["SPS1", "SPS2", "SPS3", "SPS4", "SPS5", "SPS6"], ["SPS4"],
    ),
}


def summary(path) -> tuple[str, dict[str, str]]:
    """(step id, every returned value as text), the Specific Character Set left aside."""
    ds = dcmread(path)
    values = {}
    for element in ds:
        if element.keyword == "SpecificCharacterSet":
            continue
        if element.VR == "SQ":
            for inner in element.value[0] if element.value else ():
                values[f"{element.keyword}.{inner.keyword}"] = str(inner.value)
        else:
            values[element.keyword] = str(element.value)
    return values.get("ScheduledProcedureStepSequence.ScheduledProcedureStepID", ""), values


async def answers(target, name, query, tmp_path) -> dict[str, dict[str, str]]:
    out = tmp_path / target.ae_title / name.replace(" ", "_").replace(":", "")
    if isinstance(query, Dataset):
        path = out.with_suffix(".dcm")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_worklist_file(query, path)
        result, files = await findscu_worklist(target, {}, query_file=path, out_dir=out)
    else:
        keys = {**{key: "" for key in RETURNED}, **query}
        result, files = await findscu_worklist(target, keys, out_dir=out)
    assert result.ok, result.tool.describe()
    return dict(summary(path) for path in files)


async def test_the_same_queries_give_what_wlmscpfs_gives(tmp_path):
    assert len(QUERIES) >= 12
    compared = {}
    async with wlmscpfs(ITEMS, parent_dir=tmp_path) as reference, running_node(tmp_path) as node:
        await node.index.ask(AddWorklistItems(items=tuple(item_from_dataset(ds) for ds in ITEMS)))
        for name, query in QUERIES.items():
            compared[name] = (await answers(reference, name, query, tmp_path), await answers(peer(node), name, query, tmp_path))
    differing = {name: pair for name, pair in compared.items() if pair[0] != pair[1]}
    assert set(differing) == set(EXPECTED_DIFFERENCES), {n: (sorted(a), sorted(b)) for n, (a, b) in differing.items()}
    for name, (_, theirs, ours) in EXPECTED_DIFFERENCES.items():
        assert (sorted(compared[name][0]), sorted(compared[name][1])) == (theirs, ours), name
    # The comparison is not of two empty answers.
    assert sorted(compared["everything"][0]) == [f"SPS{n}" for n in range(1, 7)]
    assert sorted(compared["modality"][1]) == ["SPS1", "SPS3", "SPS5"]
    assert sorted(compared["patient sex and birth date range"][1]) == ["SPS1", "SPS3"]
    assert compared["accession number"][1]["SPS3"]["PatientName"] == "Müller^Jürgen"
    assert compared["nothing matches"] == ({}, {})
