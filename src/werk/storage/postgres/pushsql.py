"""Transactional enqueue in SQL: ``<schema>.push(job json) -> jid``, callable from any language.

An application calls ``SELECT werk.push('{"jid": ..., "jobtype": ..., "args": [...]}')``
inside its own transaction. The function checks the job against PUSH's rules, in PUSH's
order and with PUSH's messages (:func:`werk.job.validate`, :func:`werk.job.scheduled_at`,
:func:`werk.job.check_queue_name`), raising SQLSTATE 22023 (``invalid_parameter_value``)
with the very text PUSH puts after ``-ERR``; a refused job aborts the statement, so the
caller's transaction sees the error at once. An accepted job is appended, as the text it
was given, to ``intake`` with a ``NOTIFY <schema>_intake``: both happen only if the
transaction commits, and a rollback leaves nothing.

The server then takes intake rows (``FOR UPDATE SKIP LOCKED``) and PUSHes each through the
manager in the same transaction that deletes the row (:mod:`werk.storage.postgres.intake`),
so Python's validation, middleware (unique jobs, batches) and defaults stay the one
authority. Python refusing what SQL let through (a divergence, e.g. an ``at`` that
PostgreSQL parses and Python does not) leaves the row in ``intake`` with ``error`` set.
"""

from __future__ import annotations

from typing import Final

INTAKE_CHANNEL_SUFFIX: Final = "_intake"

_VALIDATE = r"""
CREATE OR REPLACE FUNCTION {s}.push_int64(v json) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  -- what Go decodes into an int: an integer literal within int64 (no fraction, no exponent)
  SELECT json_typeof(v) = 'number' AND (v::text) ~ '^-?[0-9]+$'
         AND (v::text)::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
$$;
CREATE OR REPLACE FUNCTION {s}.push_field(job json, name text) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
  -- Go's decoder (so Faktory, so PUSH) matches keys regardless of case: "Queue" fills
  -- queue, and such a key wins over the exact one, as Python's _fold_keys leaves it
  SELECT coalesce(
    (SELECT e.value FROM json_each(job) WITH ORDINALITY AS e(key, value, n)
      WHERE e.key <> name AND lower(e.key) = name ORDER BY e.n DESC LIMIT 1),
    job -> name)
$$;
CREATE OR REPLACE FUNCTION {s}.push_error(job json) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v json;
  t text;
  q text;
  due timestamptz;
  fld text;
  k text;
BEGIN
  IF job IS NULL OR json_typeof(job) <> 'object' THEN
    RETURN 'jobs must be JSON objects';
  END IF;
  IF coalesce(json_typeof({s}.push_field(job, 'jid')), 'null') NOT IN ('string', 'null') THEN
    RETURN 'jobs must have a reasonable jid parameter';
  END IF;
  IF coalesce(json_typeof({s}.push_field(job, 'jobtype')), 'null') NOT IN ('string', 'null')
  THEN
    RETURN 'jobs must have a jobtype parameter';
  END IF;
  IF coalesce(json_typeof({s}.push_field(job, 'args')), 'null') NOT IN ('array', 'null') THEN
    RETURN 'jobs must have an args parameter';
  END IF;
  BEGIN  -- Faktory counts bytes: three CJK characters make a valid jid; NUL is refused
    t := {s}.push_field(job, 'jid') #>> '{}';
  EXCEPTION WHEN untranslatable_character OR invalid_parameter_value THEN
    RETURN 'jobs must have a reasonable jid parameter';
  END;
  IF t IS NULL OR (length(t) < 8 AND octet_length(t) < 8) THEN
    RETURN 'jobs must have a reasonable jid parameter';
  END IF;
  IF coalesce({s}.push_field(job, 'jobtype') #>> '{}', '') = '' THEN
    RETURN 'jobs must have a jobtype parameter';
  END IF;
  IF coalesce(json_typeof({s}.push_field(job, 'args')), 'null') = 'null' THEN
    RETURN 'jobs must have an args parameter';
  END IF;
  v := {s}.push_field(job, 'queue');
  IF coalesce(json_typeof(v), 'null') = 'null' OR (json_typeof(v) = 'string' AND v #>> '{}' = '')
  THEN
    q := 'default';
  ELSIF json_typeof(v) <> 'string' THEN
    RETURN 'jobs must have a string queue parameter';
  ELSE
    q := v #>> '{}';
  END IF;
  FOREACH fld IN ARRAY ARRAY['retry', 'reserve_for', 'priority'] LOOP
    v := {s}.push_field(job, fld);
    IF coalesce(json_typeof(v), 'null') <> 'null' THEN
      IF NOT {s}.push_int64(v) THEN
        RETURN format('jobs must have an integer %s parameter', fld);
      END IF;
      IF fld = 'reserve_for' AND (v::text)::numeric > 86400 THEN
        RETURN 'jobs cannot be reserved for more than one day';
      END IF;
      IF fld = 'priority' AND (v::text)::numeric NOT BETWEEN 1 AND 9 THEN
        RETURN 'jobs must have a priority between 1 and 9';
      END IF;
    END IF;
  END LOOP;
  FOREACH fld IN ARRAY ARRAY['created_at', 'enqueued_at', 'at'] LOOP
    IF coalesce(json_typeof({s}.push_field(job, fld)), 'null') NOT IN ('string', 'null') THEN
      RETURN format('jobs must have a string %s parameter', fld);
    END IF;
  END LOOP;
  v := {s}.push_field(job, 'backtrace');
  IF coalesce(json_typeof(v), 'null') <> 'null' AND NOT {s}.push_int64(v) THEN
    RETURN 'jobs must have an integer backtrace parameter';
  END IF;
  v := {s}.push_field(job, 'failure');
  IF coalesce(json_typeof(v), 'null') <> 'null' THEN
    IF json_typeof(v) <> 'object' THEN
      RETURN 'jobs must have a failure object of Faktory''s shape';
    END IF;
    FOR k, t IN SELECT key, CASE
        WHEN json_typeof(value) = 'null' THEN 'ok'
        WHEN lower(key) IN ('retry_count', 'remaining') THEN
          CASE WHEN {s}.push_int64(value) THEN 'ok' ELSE 'bad' END
        WHEN lower(key) IN ('failed_at', 'next_at', 'message', 'errtype') THEN
          CASE WHEN json_typeof(value) = 'string' THEN 'ok' ELSE 'bad' END
        WHEN lower(key) = 'backtrace' THEN
          CASE WHEN json_typeof(value) = 'array' AND NOT EXISTS (
            SELECT 1 FROM json_array_elements(value) e WHERE json_typeof(e) <> 'string')
          THEN 'ok' ELSE 'bad' END
        ELSE 'ok' END
      FROM json_each(v) LOOP
      IF t = 'bad' THEN
        RETURN 'jobs must have a failure object of Faktory''s shape';
      END IF;
    END LOOP;
  END IF;
  v := {s}.push_field(job, 'custom');
  IF coalesce(json_typeof(v), 'null') NOT IN ('null', 'object') THEN
    RETURN 'jobs must have an object as custom parameter';
  END IF;
  t := {s}.push_field(job, 'at') #>> '{}';
  IF coalesce(t, '') <> '' THEN
    IF btrim(t, E' \t\n\r\f\v') !~
       '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$' THEN
      RETURN format('invalid timestamp for ''at'': "%s": not an RFC 3339 timestamp'
                    ' (like 2006-01-02T15:04:05Z)', t);
    END IF;
    BEGIN
      t := btrim(t, E' \t\n\r\f\v');
      -- a time without an offset is UTC, as Werk reads it
      due := (CASE WHEN t ~ '([Zz]|[+-]\d{2}:\d{2})$' THEN t ELSE t || 'Z' END)::timestamptz;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow
                   OR invalid_time_zone_displacement_value THEN
      RETURN format('invalid timestamp for ''at'': "%s": %s', {s}.push_field(job, 'at') #>> '{}',
                    SQLERRM);
    END;
    -- werk.job.parse_time's range (FIRST_TIME, LAST_TIME): an offset can carry a time there
    IF due < '0001-01-01T00:00:00Z'::timestamptz
       OR due > '9999-12-31T23:59:59.999Z'::timestamptz THEN
      RETURN format('invalid timestamp for ''at'': "%s": outside the years 0001 to 9999 in UTC',
                    {s}.push_field(job, 'at') #>> '{}');
    END IF;
    IF due > clock_timestamp() THEN
      RETURN NULL;  -- scheduled: the queue name is checked when it becomes due
    END IF;
  END IF;
  IF q !~ '^[a-zA-Z0-9._-]+$' THEN
    RETURN format('cannot get "%s" queue: queue names must match \A[a-zA-Z0-9._-]+\z', q);
  END IF;
  RETURN NULL;
END
$$
"""

_PUSH = r"""
CREATE OR REPLACE FUNCTION {s}.push(job json) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  problem text;
BEGIN
  BEGIN
    problem := {s}.push_error(job);
  EXCEPTION WHEN untranslatable_character THEN  -- a \u0000, which PostgreSQL text refuses
    problem := CASE WHEN job::text ~* '"jid"\s*:\s*"([^"\\]|\\.)*\\u0000'
      THEN 'jobs must have a reasonable jid parameter'
      ELSE 'jobs must not contain \u0000 (PostgreSQL text cannot hold it)' END;
  END;
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = problem;
  END IF;
  INSERT INTO {s}.intake (job, pushed_at)
    VALUES (job::text, extract(epoch FROM clock_timestamp()));
  PERFORM pg_notify('{s}_intake', '');
  RETURN {s}.push_field(job, 'jid') #>> '{}';
END
$$
"""

PUSH_FUNCTIONS: Final = (_VALIDATE, _PUSH)
"""The statements creating ``push_error(json)`` (the message, or NULL) and ``push(json)``."""
