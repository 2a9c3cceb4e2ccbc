"""The DICOM upper layer as a sans-IO library: PDUs, the PS3.8 state machine, DIMSE
messages, fragmentation and negotiation. Bytes in, events out; no I/O, no clock."""
