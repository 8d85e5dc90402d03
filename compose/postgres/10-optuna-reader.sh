#!/usr/bin/env bash
# A login role for optuna-dashboard that reads the stack's database and can write nothing.
#
# The postgres image runs this once, when it initializes an empty data volume (mounted into
# /docker-entrypoint-initdb.d/), as POSTGRES_USER on POSTGRES_DB. A shell script rather than a
# .sql file so that the password comes from the environment (.env), never from a committed file.
#
# The tables do not exist yet: the migrate service (our Alembic revisions and Optuna's schema) and
# the study drivers create them later, all as POSTGRES_USER. ALTER DEFAULT PRIVILEGES makes every
# table that role creates in schema public readable by the reader: Optuna's (studies, trials,
# trial_params, trial_values, trial_intermediate_values, trial_user_attributes,
# trial_system_attributes, study_directions, study_user_attributes, study_system_attributes,
# version_info, alembic_version, trial_heartbeats) and, since default privileges cannot select
# tables by name, decaylab's dl_* tables as well. Read-only is enforced twice: only SELECT is
# granted, and the role's transactions are read-only by default.
set -euo pipefail

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${OPTUNA_READER_PASSWORD:?set OPTUNA_READER_PASSWORD (see .env.example)}"
reader="${OPTUNA_READER_USER:-optuna_reader}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v reader="$reader" -v password="$OPTUNA_READER_PASSWORD" \
    -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
ALTER ROLE :"reader" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"db" TO :"reader";
-- PostgreSQL 15 and later already deny PUBLIC this; older servers do not
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
