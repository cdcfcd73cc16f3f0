-- Snowflake destinations. The column CHECK of 001 got PostgreSQL's default name.

ALTER TABLE destinations DROP CONSTRAINT destinations_type_check;
ALTER TABLE destinations ADD CONSTRAINT destinations_type_check CHECK (type IN ('duckdb', 'snowflake'));
