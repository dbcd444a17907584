-- What processing changed in a document's text without failing it (e.g. NUL characters removed), for the user.
-- Additive: a hearthd of the previous release reads and writes documents as before.
ALTER TABLE documents ADD COLUMN notes text[] NOT NULL DEFAULT '{}';
