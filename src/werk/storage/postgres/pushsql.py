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
CREATE OR REPLACE FUNCTION {s}.push_error(job json) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v json;
  t text;
  n numeric;
  q text;
  due timestamptz;
  fld text;
BEGIN
  IF job IS NULL OR json_typeof(job) <> 'object' THEN
    RETURN 'jobs must be JSON objects';
  END IF;
  v := job -> 'jid';
  BEGIN
    IF v IS NULL OR json_typeof(v) <> 'string' OR length(v #>> '{}') < 8 THEN
      RETURN 'jobs must have a reasonable jid parameter';
    END IF;
  EXCEPTION WHEN untranslatable_character OR invalid_text_representation THEN
    RETURN 'jobs must have a reasonable jid parameter';
  END;
  v := job -> 'jobtype';
  BEGIN
    IF v IS NULL OR json_typeof(v) <> 'string' OR (v #>> '{}') = '' THEN
      RETURN 'jobs must have a jobtype parameter';
    END IF;
  EXCEPTION WHEN untranslatable_character OR invalid_text_representation THEN
    RETURN 'jobs must have a jobtype parameter';
  END;
  IF json_typeof(job -> 'args') IS DISTINCT FROM 'array' THEN
    RETURN 'jobs must have an args parameter';
  END IF;
  v := job -> 'queue';
  IF v IS NULL OR json_typeof(v) = 'null' OR (json_typeof(v) = 'string' AND v #>> '{}' = '')
  THEN
    q := 'default';
  ELSIF json_typeof(v) <> 'string' THEN
    RETURN 'jobs must have a string queue parameter';
  ELSE
    q := v #>> '{}';
  END IF;
  FOREACH fld IN ARRAY ARRAY['retry', 'reserve_for', 'priority'] LOOP
    v := job -> fld;
    IF v IS NOT NULL AND json_typeof(v) <> 'null' THEN
      IF json_typeof(v) <> 'number' THEN
        RETURN format('jobs must have an integer %s parameter', fld);
      END IF;
      n := trunc((v #>> '{}')::numeric);
      IF fld = 'reserve_for' AND n > 86400 THEN
        RETURN 'jobs cannot be reserved for more than one day';
      END IF;
      IF fld = 'priority' AND (n < 1 OR n > 9) THEN
        RETURN 'jobs must have a priority between 1 and 9';
      END IF;
    END IF;
  END LOOP;
  v := job -> 'custom';
  IF v IS NOT NULL AND json_typeof(v) NOT IN ('null', 'object') THEN
    RETURN 'jobs must have an object as custom parameter';
  END IF;
  v := job -> 'at';
  IF v IS NOT NULL AND json_typeof(v) <> 'null'
     AND NOT (json_typeof(v) = 'string' AND v #>> '{}' = '') THEN
    IF json_typeof(v) <> 'string' THEN
      t := CASE v::text WHEN 'true' THEN 'True' WHEN 'false' THEN 'False' ELSE v::text END;
      RETURN format('invalid timestamp for ''at'': %s: not a string', t);
    END IF;
    t := v #>> '{}';
    BEGIN
      IF t !~ '^\s*\d{4}-\d{2}-\d{2}' THEN
        RAISE invalid_datetime_format;
      END IF;
      due := t::timestamptz;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
      RETURN format('invalid timestamp for ''at'': "%s": Invalid isoformat string: %L', t,
        regexp_replace(regexp_replace(btrim(t), '[Zz]$', '+00:00'), '\.\d+', ''));
    END;
    IF due > clock_timestamp() THEN
      RETURN NULL;
    END IF;
  END IF;
  IF q !~ '^[a-zA-Z0-9._-]+$' THEN
    RETURN format('cannot get "%s" queue: queue names must match \A[a-zA-Z0-9._-]+\z', q);
  END IF;
  RETURN NULL;
END
$$
"""

_PUSH = """
CREATE OR REPLACE FUNCTION {s}.push(job json) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  problem text := {s}.push_error(job);
BEGIN
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = problem;
  END IF;
  INSERT INTO {s}.intake (job, pushed_at)
    VALUES (job::text, extract(epoch FROM clock_timestamp()));
  PERFORM pg_notify('{s}_intake', '');
  RETURN job ->> 'jid';
END
$$
"""

PUSH_FUNCTIONS: Final = (_VALIDATE, _PUSH)
"""The statements creating ``push_error(json)`` (the message, or NULL) and ``push(json)``."""
