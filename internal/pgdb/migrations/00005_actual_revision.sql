-- +goose Up
-- The revision a site's report applied, beside the report: a release's
-- progress reads compare it with the desired revision for thousands of
-- sites several times a second, and most are behind: reading it from the
-- document would decompress each report to learn one number.
ALTER TABLE fleet_actual ADD COLUMN revision bigint NOT NULL DEFAULT 0;
UPDATE fleet_actual SET revision = coalesce((doc->>'revision')::bigint, 0);

-- +goose Down
ALTER TABLE fleet_actual DROP COLUMN revision;
