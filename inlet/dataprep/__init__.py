"""Data Prep: map free-form source rows (CSV columns, JSON lines, an Edge event's `data`) onto
XDM before validation, the way Adobe's Data Prep mapping sets do.

A mapping set (`mapping.MappingSet`) is a list of `source → destination` pairs; a source is a
field of the row (`ATTRIBUTE`), an expression in the function library (`EXPRESSION`:
`lower(trim(email))`, `iif(age >= 18, "adult", "minor")`), or a constant (`CONSTANT`). The
expression language (`expression`) and the functions (`functions`) follow the names and
syntax of https://experienceleague.adobe.com/en/docs/experience-platform/data-prep/functions
where they overlap. A row that cannot be mapped fails alone, naming the function and the
value that failed (`MappingFailure`), so a batch can report it and load the rest.
"""

from inlet.dataprep.functions import FUNCTIONS, MappingFailure
from inlet.dataprep.mapping import Mapper, MappingSet, decode_mapping_set

__all__ = ["FUNCTIONS", "Mapper", "MappingFailure", "MappingSet", "decode_mapping_set"]
