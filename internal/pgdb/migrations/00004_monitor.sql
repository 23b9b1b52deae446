-- +goose Up
-- The drift monitor's series (drift.StateStore, fleet.PostgresStore): each
-- site, model and version's window, shared by the monitors of every
-- gateway replica. A write is conditional on gen (the series' generation),
-- so two monitors never lose each other's messages. The head is small and
-- rewritten by every write; the parts (a slot's sums, the window's total,
-- the site reference) only when they change.
CREATE TABLE monitor_series (
    site    text COLLATE "C" NOT NULL,
    model   text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    gen     bigint NOT NULL,
    head    bytea NOT NULL,
    PRIMARY KEY (site, model, version)
);
CREATE TABLE monitor_parts (
    site    text COLLATE "C" NOT NULL,
    model   text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    part    integer NOT NULL,
    doc     bytea NOT NULL,
    PRIMARY KEY (site, model, version, part),
    FOREIGN KEY (site, model, version) REFERENCES monitor_series ON DELETE CASCADE
);

-- +goose Down
DROP TABLE monitor_parts, monitor_series;
