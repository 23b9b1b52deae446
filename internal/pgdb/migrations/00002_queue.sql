-- +goose Up
-- The signal queue (queue.PostgresQueue): Service Bus semantics shared by
-- any number of consumers (FOR UPDATE SKIP LOCKED). seq orders a queue.
CREATE TABLE queue_messages (
    queue        text COLLATE "C" NOT NULL,
    seq          bigserial,
    id           text NOT NULL,
    body         bytea NOT NULL,
    content_type text NOT NULL DEFAULT '',
    properties   jsonb,
    enqueued_at  timestamptz NOT NULL,
    deliveries   integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    token        text,
    PRIMARY KEY (queue, seq)
);
CREATE TABLE queue_deadletter (
    queue        text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL,
    id           text NOT NULL,
    body         bytea NOT NULL,
    content_type text NOT NULL DEFAULT '',
    properties   jsonb,
    enqueued_at  timestamptz NOT NULL,
    deliveries   integer NOT NULL,
    reason       text NOT NULL,
    description  text NOT NULL,
    dead_at      timestamptz NOT NULL,
    PRIMARY KEY (queue, seq)
);
-- Duplicate detection: when each MessageId was first accepted.
CREATE TABLE queue_dedup (
    queue    text COLLATE "C" NOT NULL,
    id       text NOT NULL,
    first_at timestamptz NOT NULL,
    PRIMARY KEY (queue, id)
);
CREATE INDEX queue_dedup_age ON queue_dedup (queue, first_at);
CREATE TABLE queue_counters (
    queue      text COLLATE "C" PRIMARY KEY,
    sent       bigint NOT NULL DEFAULT 0,
    completed  bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE queue_counters, queue_dedup, queue_deadletter, queue_messages;
