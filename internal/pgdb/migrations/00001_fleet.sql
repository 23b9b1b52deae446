-- +goose Up
-- The fleet directory (fleet.PostgresStore). Documents are the JSON the
-- bbolt directory stores; ids sort in byte order ("C"), as bbolt's keys do.
CREATE TABLE fleet_sites (
    id  text COLLATE "C" PRIMARY KEY,
    doc jsonb NOT NULL
);
-- One row per registered site, created with it: a step locks these rows
-- (SELECT ... FOR UPDATE), so two replicas never step one site at once.
CREATE TABLE fleet_desired (
    site     text COLLATE "C" PRIMARY KEY REFERENCES fleet_sites (id),
    revision bigint NOT NULL DEFAULT 0,
    doc      jsonb
);
CREATE TABLE fleet_actual (
    site text COLLATE "C" PRIMARY KEY REFERENCES fleet_sites (id),
    doc  jsonb NOT NULL
);
CREATE TABLE fleet_policies (
    model text COLLATE "C" PRIMARY KEY,
    doc   bytea NOT NULL
);
CREATE TABLE fleet_baselines (
    model   text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    doc     bytea NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE TABLE fleet_workloads (
    name    text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    rec     jsonb NOT NULL,
    PRIMARY KEY (name, version)
);

-- +goose Down
DROP TABLE fleet_workloads, fleet_baselines, fleet_policies, fleet_actual, fleet_desired, fleet_sites;
