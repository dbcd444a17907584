-- An upload announces the original it is about to write before it writes it, outside any transaction that holds a
-- connection for the write's duration. A delete or a sweep of the same bytes (under the same per-content lock)
-- keeps a blob that an announcement names; an announcement older than the sweep's grace period belongs to an
-- upload that died, and goes. Additive: a hearthd of the previous release ignores the table.
CREATE TABLE blob_uploads (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_sha256 text        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blob_uploads_content ON blob_uploads (content_sha256);
