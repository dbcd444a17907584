-- The remote reasoning provider set through the API or the web UI (one row at most). The API key is sealed with
-- the box's encryption-key (XChaCha20-Poly1305, the row's id as associated data): `key_sealed` is the 24-byte
-- nonce followed by the ciphertext, so reading this table or a dump of it does not reveal the key. Additive: a
-- hearthd of the previous release ignores the table.
CREATE TABLE reasoning_provider (
    id               uuid        PRIMARY KEY,
    singleton        boolean     NOT NULL DEFAULT true UNIQUE CHECK (singleton),
    base_url         text        NOT NULL,
    model            text        NOT NULL,
    key_sealed       bytea,
    key_fingerprint  text,
    answers          boolean     NOT NULL DEFAULT false,
    updated_by       text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
