-- hearth's first schema: documents and their originals' hashes, chunks with full-text vectors, one row of
-- embeddings per (chunk, embedding space), and the durable job queue.
-- pgvector is not a trusted extension: the NixOS module (and the test kit) create it as superuser beforehand.
-- Here it is only required.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        RAISE EXCEPTION 'the pgvector extension is missing: run CREATE EXTENSION vector as a superuser in this database';
    END IF;
END
$$;

-- A space is one (model, output dimensions, model digest): vectors from different spaces never mix.
CREATE TABLE embedding_spaces (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id     text        NOT NULL,
    dims         integer     NOT NULL CHECK (dims BETWEEN 1 AND 4000),
    digest       text        NOT NULL,
    model_dir    text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('building', 'active', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    UNIQUE (model_id, dims, digest)
);
CREATE UNIQUE INDEX embedding_spaces_one_active ON embedding_spaces ((true)) WHERE state = 'active';

CREATE TABLE documents (
    id             uuid        PRIMARY KEY,
    external_id    text        UNIQUE,
    title          text,
    metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    content_sha256 text        NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    content_type   text        NOT NULL,
    byte_size      bigint      NOT NULL CHECK (byte_size > 0),
    version        integer     NOT NULL DEFAULT 1,
    status         text        NOT NULL CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error          text,
    chunk_count    integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Without an external id, the bytes are the identity: the same upload twice is one document.
CREATE UNIQUE INDEX documents_content_without_external_id ON documents (content_sha256) WHERE external_id IS NULL;
CREATE INDEX documents_metadata ON documents USING gin (metadata jsonb_path_ops);
CREATE INDEX documents_created ON documents (created_at, id);

CREATE TABLE chunks (
    id          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id uuid    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    text        text    NOT NULL,
    -- Character offsets (Unicode scalar values) of this chunk in the extracted text.
    char_start  integer NOT NULL,
    char_end    integer NOT NULL CHECK (char_end > char_start),
    token_count integer NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);

-- Vectors are halfvec without a fixed dimension here; each space gets its own partial HNSW index on
-- (embedding::halfvec(dims)) created when the space is, and searches order by that same expression.
CREATE TABLE chunk_vectors (
    chunk_id    bigint  NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    space_id    bigint  NOT NULL REFERENCES embedding_spaces (id) ON DELETE CASCADE,
    document_id uuid    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    embedding   halfvec NOT NULL,
    PRIMARY KEY (space_id, chunk_id)
);
CREATE INDEX chunk_vectors_document ON chunk_vectors (document_id);

CREATE TABLE jobs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('ingest', 'embed')),
    document_id   uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    -- For 'embed': the space to embed the document's existing chunks into.
    space_id      bigint      REFERENCES embedding_spaces (id) ON DELETE CASCADE,
    attempts      integer     NOT NULL DEFAULT 0,
    run_after     timestamptz NOT NULL DEFAULT now(),
    -- A claim: other workers leave the job alone until claimed_until, even if the claiming worker died; only the
    -- holder of claim_token may finish it.
    claimed_until timestamptz,
    claim_token   uuid,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'embed') = (space_id IS NOT NULL))
);
CREATE UNIQUE INDEX jobs_one_per_document_and_kind ON jobs (document_id, kind, coalesce(space_id, 0));
CREATE INDEX jobs_due ON jobs (run_after, id);
