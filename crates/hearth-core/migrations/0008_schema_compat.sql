-- hearth-compat: expand
-- Each applied migration's declaration (see crates/hearth-core/src/schema/mod.rs): an older hearthd that meets a
-- schema newer than it knows reads here whether it may still run on it.
CREATE TABLE hearth_schema_compat (
    version     bigint      PRIMARY KEY,
    description text        NOT NULL,
    breaking    boolean     NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
