-- Per-column type overrides of a pipeline (`etl-tui pipeline add/edit --column-type`): what a
-- numeric column becomes at the destination, instead of the type the engine would choose.

CREATE TABLE pipeline_column_types (
    pipeline_id  bigint NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    column_name  text NOT NULL,
    type         text NOT NULL CHECK (type = 'text' OR type ~ '^decimal\(\d+,\d+\)$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, schema_name, table_name, column_name)
);

CREATE TRIGGER pipeline_column_types_notify AFTER INSERT OR UPDATE OR DELETE ON pipeline_column_types
    FOR EACH STATEMENT EXECUTE FUNCTION etl_config_notify();
