"""The DuckDB schema, as an ordered list of migrations.

``MIGRATIONS[i]`` moves a database from schema version ``i`` to ``i + 1``. A database is
migrated on open, inside one transaction, so it is either fully at the new version or
untouched. Add a migration at the end; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 0 -> 1: datasets, reviews, items, rejected rows.
    """
    CREATE TABLE datasets (
        name          VARCHAR PRIMARY KEY,
        file_name     VARCHAR NOT NULL,
        file_hash     VARCHAR NOT NULL,
        file_format   VARCHAR NOT NULL,
        encoding      VARCHAR NOT NULL,
        delimiter     VARCHAR,
        mapping       VARCHAR NOT NULL,  -- JSON {canonical column: source column}
        config        VARCHAR NOT NULL,  -- JSON IngestConfig
        n_reviews     BIGINT NOT NULL,
        n_users       BIGINT NOT NULL,
        n_items       BIGINT NOT NULL,
        n_l1          BIGINT NOT NULL,
        n_l2          BIGINT NOT NULL,
        n_l3          BIGINT NOT NULL,
        n_rejected    BIGINT NOT NULL,
        has_timestamp BOOLEAN NOT NULL,
        created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE reviews (
        review_id  BIGINT NOT NULL,     -- unique across datasets
        dataset    VARCHAR NOT NULL,
        row_number BIGINT NOT NULL,     -- 1-based data row in the source file
        user_id    VARCHAR NOT NULL,
        item_id    VARCHAR NOT NULL,
        text       VARCHAR NOT NULL,
        rating     DOUBLE NOT NULL,
        ts         TIMESTAMP,
        split      VARCHAR NOT NULL     -- train | val | test
    );
    CREATE TABLE items (
        dataset   VARCHAR NOT NULL,
        item_id   VARCHAR NOT NULL,
        title     VARCHAR,
        category  VARCHAR,
        l1        VARCHAR,
        l2        VARCHAR,
        l3        VARCHAR,
        n_reviews BIGINT NOT NULL
    );
    CREATE TABLE ingest_rejects (
        dataset    VARCHAR NOT NULL,
        line       BIGINT NOT NULL,     -- physical line where the record starts (header = 1)
        row_number BIGINT NOT NULL,
        reason     VARCHAR NOT NULL,     -- a category, e.g. 'rating is not a number'
        detail     VARCHAR NOT NULL,     -- the specifics, e.g. 'rating "five"'
        user_id    VARCHAR,
        item_id    VARCHAR,
        rating     VARCHAR,
        text       VARCHAR
    );
    """,
]

MIGRATIONS.append(
    # 1 -> 2: model versions, training log, background jobs, embedding sets. The vectors
    # live in review_embeddings_<d> / item_embeddings_<d> (FLOAT[d]), made per dimension.
    """
    CREATE TABLE model_versions (
        version          VARCHAR PRIMARY KEY,
        kind             VARCHAR NOT NULL,     -- base | fine-tuned
        dataset          VARCHAR,              -- trained on (NULL for base)
        base_model       VARCHAR NOT NULL,
        strategy         VARCHAR,
        config           VARCHAR NOT NULL,     -- JSON TrainConfig
        data_hash        VARCHAR,
        library_versions VARCHAR NOT NULL,     -- JSON
        status           VARCHAR NOT NULL,     -- running | ready | failed | cancelled
        artefact_dir     VARCHAR,
        metrics          VARCHAR,              -- JSON: best-epoch validation metrics
        dim              INTEGER,
        device           VARCHAR,
        message          VARCHAR,
        created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
        finished_at      TIMESTAMP
    );
    CREATE TABLE train_log (
        version VARCHAR NOT NULL,
        step    INTEGER NOT NULL,
        epoch   INTEGER NOT NULL,
        metric  VARCHAR NOT NULL,              -- e.g. loss/overall, val/category/macro_f1
        value   DOUBLE
    );
    CREATE TABLE embedding_sets (
        version    VARCHAR NOT NULL,
        dataset    VARCHAR NOT NULL,
        dim        INTEGER NOT NULL,
        n_reviews  BIGINT NOT NULL,
        n_items    BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (version, dataset)
    );
    CREATE TABLE jobs (
        job_id      VARCHAR PRIMARY KEY,
        kind        VARCHAR NOT NULL,          -- train | embed
        version     VARCHAR NOT NULL,
        dataset     VARCHAR NOT NULL,
        pid         INTEGER,
        run_dir     VARCHAR NOT NULL,
        status      VARCHAR NOT NULL,          -- running | finished | failed | cancelled
        message     VARCHAR,
        started_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
        finished_at TIMESTAMP
    );
    """
)

MIGRATIONS.append(
    # 2 -> 3: category-head probabilities per review, head vocabularies per version, user
    # profiles (vectors in user_profile_vectors_<d>), evaluation results per user.
    """
    ALTER TABLE model_versions ADD COLUMN heads VARCHAR;  -- JSON {task: [label, ...]}
    CREATE TABLE review_head_probs (
        version   VARCHAR NOT NULL,
        dataset   VARCHAR NOT NULL,
        review_id BIGINT NOT NULL,
        task      VARCHAR NOT NULL,               -- category | subcategory
        probs     FLOAT[] NOT NULL                -- in the order of heads[task]
    );
    CREATE TABLE user_profiles (
        version   VARCHAR NOT NULL,
        dataset   VARCHAR NOT NULL,
        user_id   VARCHAR NOT NULL,
        level     VARCHAR NOT NULL,               -- overall | l1 | l2 | interest
        key       VARCHAR NOT NULL,               -- category path, interest number, or ''
        n_reviews BIGINT NOT NULL,
        share     DOUBLE,
        sentiment DOUBLE,
        head_prob DOUBLE,
        affinity  DOUBLE,
        keywords  VARCHAR[],
        review_ids BIGINT[],                      -- representative train reviews
        cold      BOOLEAN NOT NULL,
        vector_row BIGINT NOT NULL                -- row in user_profile_vectors_<d>
    );
    CREATE TABLE evaluations (
        dataset    VARCHAR NOT NULL,
        version    VARCHAR NOT NULL,
        scorer     VARCHAR NOT NULL,
        split      VARCHAR NOT NULL,
        metric     VARCHAR NOT NULL,
        value      DOUBLE,
        n_users    BIGINT NOT NULL,
        details    VARCHAR,                       -- JSON, e.g. fusion weights
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE per_user_metrics (
        dataset  VARCHAR NOT NULL,
        version  VARCHAR NOT NULL,
        scorer   VARCHAR NOT NULL,
        split    VARCHAR NOT NULL,
        user_id  VARCHAR NOT NULL,
        metric   VARCHAR NOT NULL,
        value    DOUBLE
    );
    CREATE TABLE fusion_weights (
        dataset  VARCHAR NOT NULL,
        version  VARCHAR NOT NULL,
        scorer   VARCHAR NOT NULL,
        weights  VARCHAR NOT NULL,                -- JSON {feature: weight}
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    """
)

MIGRATIONS.append(
    # 3 -> 4: who runs a job. ``pid`` is now set from the moment the row is inserted: the
    # process that prepared the job (the CLI runs it inline; the app until spawn() hands it
    # to a child), with that process's start time so that a reused pid is not taken for it.
    # A job still 'running' without a pid was run by a process that held this file (the
    # CLI, or the app before it spawned the child); the file is free now, so it has ended.
    """
    ALTER TABLE jobs ADD COLUMN pid_start BIGINT;  -- Linux: /proc/PID/stat field 22 (ticks)
    ALTER TABLE jobs ADD COLUMN detached BOOLEAN;  -- pid leads its own session (a child)
    UPDATE jobs SET detached = pid IS NOT NULL;
    UPDATE model_versions
    SET status = 'failed', finished_at = current_timestamp,
        message = 'The process that ran this job ended without finishing it (it was '
                  || 'killed or crashed).'
    WHERE status = 'running' AND version IN (
        SELECT version FROM jobs WHERE kind = 'train' AND status = 'running' AND pid IS NULL);
    UPDATE jobs
    SET status = 'failed', finished_at = current_timestamp,
        message = 'The process that ran this job ended without finishing it (it was '
                  || 'killed or crashed).'
    WHERE status = 'running' AND pid IS NULL;
    """
)

MIGRATIONS.append(
    # 4 -> 5: hyper-parameter searches (mgi_core/jobs/search.py) and the ablation of the
    # training options (mgi_core/evaluation/training_ablation.py).
    """
    CREATE TABLE search_studies (
        study       VARCHAR PRIMARY KEY,
        dataset     VARCHAR NOT NULL,
        base_config VARCHAR NOT NULL,             -- JSON TrainConfig the trials start from
        space       VARCHAR NOT NULL,             -- JSON search space
        objective   VARCHAR NOT NULL,             -- what is minimised on validation
        direction   VARCHAR NOT NULL,
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE search_trials (
        study       VARCHAR NOT NULL,
        dataset     VARCHAR NOT NULL,             -- the study's (a purge finds it here)
        trial       INTEGER NOT NULL,
        state       VARCHAR NOT NULL,             -- complete, pruned, fail
        params      VARCHAR NOT NULL,             -- JSON {field: value}
        value       DOUBLE,
        val_metrics VARCHAR,                      -- JSON {metric: value}
        seconds     DOUBLE,
        finished_at TIMESTAMP,
        PRIMARY KEY (study, trial)
    );
    CREATE TABLE training_ablations (
        name        VARCHAR NOT NULL,             -- one ablation run
        dataset     VARCHAR NOT NULL,
        variant     VARCHAR NOT NULL,
        version     VARCHAR NOT NULL,
        overrides   VARCHAR NOT NULL,             -- JSON TrainConfig fields set by the variant
        created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (name, variant)
    );
    """
)

MIGRATIONS.append(
    # 5 -> 6: interests over time and users' privacy (README, "Privacy" and "Appending
    # reviews"): what an ingest redacted and whether it hashed user ids, the recency
    # half-life of a dataset's profiles, each append, and which versions were trained on
    # reviews that were later forgotten (counts only: no id of a forgotten user is kept).
    """
    ALTER TABLE datasets ADD COLUMN redactions VARCHAR;           -- JSON {kind: n reviews}
    ALTER TABLE datasets ADD COLUMN user_id_hashing VARCHAR;      -- NULL | 'sha256-salted'
    ALTER TABLE datasets ADD COLUMN user_id_salt_check VARCHAR;   -- sha256 of a tag + salt
    ALTER TABLE datasets ADD COLUMN profile_half_life_days DOUBLE;  -- NULL: no recency decay
    CREATE TABLE dataset_appends (
        dataset         VARCHAR NOT NULL,
        seq             INTEGER NOT NULL,       -- 1, 2, ... per dataset
        file_name       VARCHAR NOT NULL,
        file_hash       VARCHAR NOT NULL,
        first_review_id BIGINT NOT NULL,        -- the appended rows' review ids
        last_review_id  BIGINT NOT NULL,
        n_reviews       BIGINT NOT NULL,
        n_rejected      BIGINT NOT NULL,
        n_users         BIGINT NOT NULL,        -- users with appended reviews
        n_new_users     BIGINT NOT NULL,
        n_moved         BIGINT NOT NULL,        -- held-out reviews moved to train
        redactions      VARCHAR,                -- JSON {kind: n reviews}
        appended_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (dataset, seq)
    );
    CREATE TABLE profile_interest_members (     -- which fine interest each train review is in
        version   VARCHAR NOT NULL,
        dataset   VARCHAR NOT NULL,
        user_id   VARCHAR NOT NULL,
        review_id BIGINT NOT NULL,
        interest  INTEGER NOT NULL             -- user_profiles.key of the interest row
    );
    CREATE TABLE forgotten_data (
        version      VARCHAR NOT NULL,          -- trained with reviews since forgotten
        dataset      VARCHAR NOT NULL,
        n_reviews    BIGINT NOT NULL,           -- of one forgotten user
        forgotten_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    """
)

SCHEMA_VERSION = len(MIGRATIONS)

# Tables a caller may name dynamically (identifiers are never taken from user input).
TABLES = frozenset({
    "datasets", "reviews", "items", "ingest_rejects", "model_versions", "train_log",
    "embedding_sets", "jobs", "review_head_probs", "user_profiles", "evaluations",
    "per_user_metrics", "fusion_weights", "search_studies", "search_trials",
    "training_ablations", "dataset_appends", "forgotten_data", "profile_interest_members",
})
