-- +goose Up
-- Release statements, each kept once under its digest: a signed version's
-- statement (about a kilobyte) is named by that digest in the desired
-- state of every site it goes to, instead of copied into each, so a step
-- or a release's finish at a thousand sites neither reads nor writes a
-- thousand copies.
CREATE TABLE fleet_statements (
    ref text COLLATE "C" PRIMARY KEY,
    doc bytea NOT NULL
);

-- +goose Down
DROP TABLE fleet_statements;
