from tests.pg import pg_database, pg_server, pg_url  # noqa: F401  (fixtures)
