"""DuckDB settings for reading Parquet from object stores (``s3://``, ``gs://``) with httpfs.

``mgi_core.data.lake.duckdb_prepare`` calls ``prepare_remote_reads`` before a
``read_parquet`` over a remote location; local paths need nothing. Credentials are never
written here: for S3 a secret with the ``credential_chain`` provider (DuckDB's ``aws``
extension) picks up what the AWS SDK finds (``AWS_ACCESS_KEY_ID`` / ``AWS_PROFILE`` /
``~/.aws`` / an instance role), as pyarrow does. DuckDB reads GCS through its S3 API with HMAC
keys, so a ``gs://`` location needs a GCS secret the user created (e.g. a persistent one).
"""

from __future__ import annotations

import duckdb

from mgi_core.errors import ConfigError

S3_SCHEMES = ("s3", "s3a", "s3n")
GCS_SCHEMES = ("gs", "gcs")
# The schemes DuckDB's httpfs reads; pyarrow reads more (hdfs, abfs), DuckDB does not.
DUCKDB_REMOTE_SCHEMES = S3_SCHEMES + GCS_SCHEMES
S3_SECRET = "mgi_lake_s3"


def prepare_remote_reads(cur: duckdb.DuckDBPyConnection, scheme: str) -> None:
    """Load httpfs (and, for S3, a credential-chain secret) on ``cur``'s connection.

    Raises:
        ConfigError: DuckDB cannot read this scheme, or its extensions cannot be installed
            (e.g. an offline machine that never installed them).
    """
    if scheme not in DUCKDB_REMOTE_SCHEMES:
        raise ConfigError(
            f"DuckDB cannot read {scheme}:// locations; use a local folder or one of "
            f"{', '.join(s + '://' for s in DUCKDB_REMOTE_SCHEMES)}."
        )
    extensions = ("httpfs", "aws") if scheme in S3_SCHEMES else ("httpfs",)
    try:
        for name in extensions:
            cur.execute(f"INSTALL {name}")
            cur.execute(f"LOAD {name}")
        if scheme in S3_SCHEMES:
            cur.execute(f"CREATE SECRET IF NOT EXISTS {S3_SECRET} "
                        "(TYPE s3, PROVIDER credential_chain)")
    except duckdb.Error as exc:
        raise ConfigError(
            f"DuckDB cannot prepare {scheme}:// reads ({str(exc).splitlines()[0]}). It needs "
            f"the extensions {', '.join(extensions)}: run INSTALL on a machine with network "
            "access (they are cached in ~/.duckdb/extensions), and configure credentials "
            "(AWS environment variables or profile for s3://)."
        ) from exc
