-- Keyword search ranks with BM25, which needs corpus statistics: for each lexeme, how many chunks contain it, and
-- how many chunks there are and how long they are on average. `lexicon` holds them; the row with the empty lexeme
-- (no word stems to it) holds the totals. A chunk's length is its number of distinct lexemes, length(tsv).
--
-- Triggers on chunks append every change to `lexicon_changes` instead of updating `lexicon`: two ingest workers
-- updating the rows of common words in place would wait on each other until commit, and in opposite orders
-- deadlock. Appending takes no row locks. hearthd folds the changes into `lexicon` under an advisory lock after
-- each job; readers add both tables, so the statistics are exact at every snapshot, folded or not.
-- Additive: a hearthd of the previous release writes chunks as before and the triggers keep counting.
CREATE TABLE lexicon (
    lexeme      text   PRIMARY KEY,
    -- Chunks containing the lexeme; for '' the number of chunks.
    chunks      bigint NOT NULL,
    -- Occurrences of the lexeme; for '' the sum of the chunks' lengths.
    occurrences bigint NOT NULL
);

CREATE TABLE lexicon_changes (
    lexeme      text   NOT NULL,
    chunks      bigint NOT NULL,
    occurrences bigint NOT NULL
);
CREATE INDEX lexicon_changes_lexeme ON lexicon_changes (lexeme);

-- The statistics of one statement's chunks, signed: +1 when they arrive, -1 when they go.
CREATE FUNCTION lexicon_record(sign integer, changed_chunks tsvector[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO lexicon_changes (lexeme, chunks, occurrences)
    SELECT u.lexeme, sign * count(*), sign * sum(coalesce(array_length(u.positions, 1), 1))
    FROM unnest(changed_chunks) AS c(tsv), unnest(c.tsv) AS u
    GROUP BY u.lexeme
    UNION ALL
    SELECT '', sign * count(*), sign * coalesce(sum(length(c.tsv)), 0)
    FROM unnest(changed_chunks) AS c(tsv)
    HAVING count(*) > 0
$$;

CREATE FUNCTION lexicon_chunks_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lexicon_record(1, ARRAY(SELECT tsv FROM inserted));
    RETURN NULL;
END
$$;

CREATE FUNCTION lexicon_chunks_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lexicon_record(-1, ARRAY(SELECT tsv FROM deleted));
    RETURN NULL;
END
$$;

CREATE FUNCTION lexicon_chunks_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lexicon_record(-1, ARRAY(SELECT tsv FROM deleted));
    PERFORM lexicon_record(1, ARRAY(SELECT tsv FROM inserted));
    RETURN NULL;
END
$$;

-- A trigger with transition tables serves one event; a deletion cascading from documents fires it too.
CREATE TRIGGER chunks_lexicon_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION lexicon_chunks_inserted();
CREATE TRIGGER chunks_lexicon_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION lexicon_chunks_deleted();
CREATE TRIGGER chunks_lexicon_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS deleted NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION lexicon_chunks_updated();

-- Moves the appended changes into `lexicon`, in lexeme order so that two folds could never deadlock, and drops
-- lexemes no chunk has any more. Callers hold the advisory lock that makes it one fold at a time.
CREATE FUNCTION lexicon_fold() RETURNS void
LANGUAGE sql AS $$
    WITH moved AS (DELETE FROM lexicon_changes RETURNING lexeme, chunks, occurrences)
    INSERT INTO lexicon (lexeme, chunks, occurrences)
    SELECT lexeme, sum(chunks), sum(occurrences) FROM moved GROUP BY lexeme ORDER BY lexeme
    ON CONFLICT (lexeme) DO UPDATE
        SET chunks = lexicon.chunks + excluded.chunks, occurrences = lexicon.occurrences + excluded.occurrences;
    DELETE FROM lexicon WHERE chunks <= 0 AND lexeme <> '';
$$;

-- The chunks already stored, counted in place rather than through one array of every chunk.
INSERT INTO lexicon (lexeme, chunks, occurrences)
SELECT u.lexeme, count(*), sum(coalesce(array_length(u.positions, 1), 1))
FROM chunks c, unnest(c.tsv) AS u
GROUP BY u.lexeme;
INSERT INTO lexicon (lexeme, chunks, occurrences)
SELECT '', count(*), coalesce(sum(length(tsv)), 0) FROM chunks;
