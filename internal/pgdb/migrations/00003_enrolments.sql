-- +goose Up
-- Site enrolments (auth.PostgresEnrolments), shared by every gateway
-- replica: join tokens, the certificates issued to each site, revocations.
-- A join token is kept by the SHA-256 of its secret, never the secret.
CREATE TABLE enrol_tokens (
    hash        text PRIMARY KEY,
    site        text COLLATE "C" NOT NULL,
    labels      jsonb,
    expires     timestamptz NOT NULL,
    made_by     text NOT NULL,
    redeemed_at timestamptz
);
CREATE INDEX enrol_tokens_site ON enrol_tokens (site);
-- The certificates issued to a site and not revoked, the newest (largest
-- seq) kept.
CREATE TABLE enrol_serials (
    site   text COLLATE "C" NOT NULL,
    serial text COLLATE "C" NOT NULL,
    seq    bigserial,
    PRIMARY KEY (site, serial)
);
CREATE TABLE enrol_revoked (
    serial text COLLATE "C" PRIMARY KEY,
    site   text COLLATE "C" NOT NULL,
    at     timestamptz NOT NULL
);
-- One row: revision counts revocations (each replica polls it and reloads
-- enrol_revoked when it moved); imported_at is when a file store
-- (<pki>/enrolments.json) was imported, once.
CREATE TABLE enrol_meta (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    revision    bigint NOT NULL DEFAULT 0,
    imported_at timestamptz
);
INSERT INTO enrol_meta DEFAULT VALUES;

-- +goose Down
DROP TABLE enrol_meta, enrol_revoked, enrol_serials, enrol_tokens;
