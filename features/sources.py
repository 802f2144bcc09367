"""Feast sources: the Parquet feature tables written by ``features.build`` (paths relative to the repo).

Relative paths resolve against the store's ``repo_path`` (the features directory
chosen by ``features.store``), so the registry never holds a machine-specific path.
"""

from feast import FileSource

from features.transforms.windows import EVENT_TIMESTAMP


def _source(view: str) -> FileSource:
    return FileSource(name=f"{view}_source", path=f"{view}.parquet", timestamp_field=EVENT_TIMESTAMP)


merchant_stats_source = _source("merchant_stats")
merchant_hour_stats_source = _source("merchant_hour_stats")
courier_stats_source = _source("courier_stats")
customer_stats_source = _source("customer_stats")
cell_hour_stats_source = _source("cell_hour_stats")
