"""Wire forms for the value types workflow messages carry.

Traces turn every message into JSON through the runtime's cattrs converter, which knows
no datetimes. Workflow messages carry aware datetimes (lock acquisition times, next runs),
so they travel as ISO 8601 text with their offset. Registering here (idempotently, at
import of any workflow message module) keeps the runtime unaware of workflow types.
"""

import datetime as dt

from ..actors.codec import converter


def _datetime_from_text(value: str | dt.datetime, _: type) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


converter.register_unstructure_hook(dt.datetime, lambda value: value.isoformat())
converter.register_structure_hook(dt.datetime, _datetime_from_text)
