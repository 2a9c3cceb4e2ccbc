"""The DICOM client (SCU) as a plain async library - not an actor - and the link both it
and the node's associations drive: a sans-IO association over a Trio stream.

    async with triopacs.client.connect("127.0.0.1", 11112, called_ae_title="PACS") as association:
        await association.echo()

See docs/client.md.
"""

from .connection import ClientAssociation, connect

__all__ = ["ClientAssociation", "connect"]
