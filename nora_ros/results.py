"""Trial results: the durable store and the summary table, in one import.

The store (:mod:`nora_ros.results_store`) appends one JSON line per finished trial, fsynced;
the table (:mod:`nora_ros.results_table`) turns one or more stores into the NORA paper's
Table 1 layout, a CSV and a bar chart. ``nora-ros results`` is the command line for the table.
"""

from nora_ros.results_store import (
    SCHEMA_VERSION,
    LoadedResults,
    ResultsStore,
    TrialResult,
    config_digest,
    load_results,
)
from nora_ros.results_table import (
    CONFIDENCE,
    Cell,
    ResultsTable,
    Row,
    build_table,
    format_table,
    plot_table,
    table_rows,
    wilson_interval,
    write_csv,
)

__all__ = [
    "CONFIDENCE",
    "SCHEMA_VERSION",
    "Cell",
    "LoadedResults",
    "ResultsStore",
    "ResultsTable",
    "Row",
    "TrialResult",
    "build_table",
    "config_digest",
    "format_table",
    "load_results",
    "plot_table",
    "table_rows",
    "wilson_interval",
    "write_csv",
]
