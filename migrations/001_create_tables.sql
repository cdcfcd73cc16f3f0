-- etl-tui config database. Never edit a released migration: add a new numbered file.

CREATE TABLE sources (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    dsn         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE destinations (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    type        text NOT NULL CHECK (type IN ('duckdb')),
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pipelines (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    source_id       bigint NOT NULL REFERENCES sources (id),
    destination_id  bigint NOT NULL REFERENCES destinations (id),
    status          text NOT NULL DEFAULT 'start' CHECK (status IN ('start', 'pause')),
    -- fixed at creation so a rename never orphans a slot
    publication_name text NOT NULL UNIQUE,
    slot_name        text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pipeline_tables (
    pipeline_id  bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, schema_name, table_name)
);

-- Tell running managers about every change at once (they also poll, in case a notice is missed).
CREATE FUNCTION etl_config_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('etl_config', json_build_object('table', TG_TABLE_NAME, 'op', TG_OP)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER sources_notify AFTER INSERT OR UPDATE OR DELETE ON sources
    FOR EACH STATEMENT EXECUTE FUNCTION etl_config_notify();
CREATE TRIGGER destinations_notify AFTER INSERT OR UPDATE OR DELETE ON destinations
    FOR EACH STATEMENT EXECUTE FUNCTION etl_config_notify();
CREATE TRIGGER pipelines_notify AFTER INSERT OR UPDATE OR DELETE ON pipelines
    FOR EACH STATEMENT EXECUTE FUNCTION etl_config_notify();
CREATE TRIGGER pipeline_tables_notify AFTER INSERT OR UPDATE OR DELETE ON pipeline_tables
    FOR EACH STATEMENT EXECUTE FUNCTION etl_config_notify();
