-- The concept graph: concepts the reasoning provider found in documents (merged across documents by name and by
-- embedding similarity), where each is mentioned (a chunk and a span in it), and typed relations between them.
-- Everything hangs off chunks: a new version of a document replaces its chunks, and by cascade its mentions and
-- relations; deleting the document deletes them too, and a concept left without any mention goes with them
-- (trigger below). Additive: a hearthd of the previous release ignores these tables.

-- Consent for extraction, on the provider set through the API (a declared provider says it in the config).
ALTER TABLE reasoning_provider ADD COLUMN concepts boolean NOT NULL DEFAULT false;

CREATE TABLE concepts (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Lower case, single spaces: names that differ only in case or spacing are one concept.
    normalized  text        NOT NULL UNIQUE,
    aliases     text[]      NOT NULL DEFAULT '{}',
    -- The aliases normalized like `normalized`, for matching.
    alias_keys  text[]      NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX concepts_alias_keys ON concepts USING gin (alias_keys);

-- A concept's name embedded in each space, so a model switch re-embeds names instead of losing the graph.
CREATE TABLE concept_vectors (
    concept_id  uuid    NOT NULL REFERENCES concepts (id) ON DELETE CASCADE,
    space_id    bigint  NOT NULL REFERENCES embedding_spaces (id) ON DELETE CASCADE,
    embedding   halfvec NOT NULL,
    PRIMARY KEY (space_id, concept_id)
);
-- A concept's deletion cascades here by concept_id.
CREATE INDEX concept_vectors_concept ON concept_vectors (concept_id);

CREATE TABLE concept_mentions (
    concept_id  uuid    NOT NULL REFERENCES concepts (id) ON DELETE CASCADE,
    chunk_id    bigint  NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    document_id uuid    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    -- Character offsets in the document's extracted text: the name where the chunk says it (exact), else the
    -- whole chunk the provider named.
    char_start  integer NOT NULL,
    char_end    integer NOT NULL CHECK (char_end > char_start),
    exact       boolean NOT NULL,
    PRIMARY KEY (concept_id, chunk_id)
);
CREATE INDEX concept_mentions_chunk ON concept_mentions (chunk_id);
CREATE INDEX concept_mentions_document ON concept_mentions (document_id);

CREATE TABLE concept_relations (
    source_id   uuid    NOT NULL REFERENCES concepts (id) ON DELETE CASCADE,
    target_id   uuid    NOT NULL REFERENCES concepts (id) ON DELETE CASCADE,
    relation    text    NOT NULL,
    -- The chunk the relation was read from.
    chunk_id    bigint  NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, target_id, relation, chunk_id),
    CHECK (source_id <> target_id)
);
CREATE INDEX concept_relations_target ON concept_relations (target_id);
CREATE INDEX concept_relations_chunk ON concept_relations (chunk_id);

-- A concept nobody mentions any more is gone: after a document's deletion or new version, and after a merge.
CREATE FUNCTION concepts_drop_unmentioned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The graph's lock, which an extraction's commit holds: without it this statement's snapshot would miss a
    -- mention that commit is adding to one of these concepts, and delete the concept under it.
    PERFORM pg_advisory_xact_lock(hashtext('hearth concept graph'));
    DELETE FROM concepts c
    WHERE c.id IN (SELECT DISTINCT concept_id FROM gone)
      AND NOT EXISTS (SELECT 1 FROM concept_mentions m WHERE m.concept_id = c.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER concept_mentions_gone AFTER DELETE ON concept_mentions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION concepts_drop_unmentioned();

-- One extraction per document, for its current version: the queue (claimed like ingest jobs, fenced by a claim
-- token) and the record of what came of it. `run_after` is compared with hearthd's clock, not the database's.
CREATE TABLE concept_jobs (
    document_id   uuid        PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    version       integer     NOT NULL,
    state         text        NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'private')),
    -- Results the provider got wrong (not JSON, not the schema); a job fails after concepts.max_attempts.
    attempts      integer     NOT NULL DEFAULT 0,
    -- Consecutive times the provider could not be asked (down, refusing, over budget): only the back-off grows.
    waits         integer     NOT NULL DEFAULT 0,
    run_after     timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    claim_token   uuid,
    last_error    text,
    model         text,
    tokens        bigint      NOT NULL DEFAULT 0,
    concepts      integer     NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX concept_jobs_due ON concept_jobs (run_after) WHERE state = 'pending';

-- Provider tokens spent on extraction per UTC day, against concepts.daily_token_budget.
CREATE TABLE concept_token_usage (
    day     date   PRIMARY KEY,
    tokens  bigint NOT NULL DEFAULT 0
);

-- Documents already in the library wait for extraction like new ones.
INSERT INTO concept_jobs (document_id, version, state)
SELECT id, version, 'pending' FROM documents WHERE status = 'ready';
