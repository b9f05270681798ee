import { assertSchemaName, captureTriggerName, wakeChannel } from './schema-name';

/**
 * DDL for the change log, the reader state, the wake gate and the functions that start and stop
 * tracking a table. Idempotent: safe to run on every start and from a migration.
 *
 * Why each piece looks the way it does (DESIGN.md §2, docs/design.md):
 * - `xid` comes from pg_current_xact_id(): the reader orders by (xid, id) and reads only below the
 *   commit horizon, so a transaction that commits late can never be skipped.
 * - Triggers are statement-level with transition tables: one INSERT ... SELECT per statement.
 * - The wake gate is a sequence because setval() is not transactional and not MVCC: readers flip
 *   it without blocking writers, and writers see the flip at once. Its value is a bitmask with one
 *   bit per armed reader (wake-gate.ts), so readers sharing a schema never close each other's gate.
 *   Writers only NOTIFY while some bit is set (a reader is idle); a notifying commit takes a
 *   cluster-wide lock, so skipping it while readers are awake keeps writers scaling.
 * - Writers never NOTIFY on a server that allows prepared transactions
 *   (max_prepared_transactions > 0): PREPARE TRANSACTION refuses a transaction that notified, and
 *   a trigger cannot know whether its transaction will be prepared. Readers there poll instead.
 * - The capture function is SECURITY DEFINER with a fixed search_path and schema-qualified names:
 *   a writer needs rights on its own table only, never on the change log or the gate. EXECUTE is
 *   revoked from PUBLIC (a trigger fires without it), and the function refuses to run for any
 *   table but the one tracked as its feed: a role granted EXECUTE anyway (GRANT ... ON ALL
 *   FUNCTIONS) could otherwise fire it on a table of its own and run code with the owner's rights.
 * - polling_track and its helpers run as their caller (usually a privileged migration role), with
 *   a fixed search_path, so no function a writer planted on the caller's path runs inside them.
 * - Re-tracking a table whose triggers already call its function only replaces the function's
 *   body: trigger DDL would lock the table, behind any transaction (or prepared one) that wrote it.
 * - A table dropped without polling_untrack is forgotten at the next track, untrack or upgrade.
 * - Function names are capped and carry a hash of the feed (polling_capture_function): a plain
 *   `polling_capture_<feed>` would be cut at 63 bytes, and two long feeds would share one body.
 * - The trigger runs once per write statement, so its fixed cost is the writers' cost (bench/):
 *   the gate test is a plain PL/pgSQL expression (FOUND, pg_sequence_last_value) that runs without
 *   an executor, instead of a second SQL statement; and polling_changes has no CHECK constraint,
 *   because Postgres re-parses a CHECK from its catalog text on every INSERT statement. Only the
 *   generated triggers write the table, with 'u' or 'd', and nothing reads op to decide anything.
 */
export function installChangeLogSql(schema: string): string {
  const s = `"${assertSchemaName(schema)}"`;
  const channel = wakeChannel(schema);
  const [ins, upd, del] = (['insert', 'update', 'delete'] as const).map((op) =>
    captureTriggerName(schema, op),
  );
  // This change log's triggers on p_table, whatever their name (before per-schema names they were
  // polling_capture_<op>), never another change log's.
  const ownTriggers = `SELECT tg.tgname, tg.tgfoid, tg.tgenabled FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
    WHERE tg.tgrelid = p_table AND p.pronamespace = '${s}'::regnamespace
      AND tg.tgname LIKE 'polling\\_capture\\_%'`;
  return `
CREATE SCHEMA IF NOT EXISTS ${s};

CREATE TABLE IF NOT EXISTS ${s}.polling_changes (
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  id bigint GENERATED ALWAYS AS IDENTITY (CACHE 64),
  feed text NOT NULL,
  resource_id text NOT NULL,
  op "char" NOT NULL, -- 'u' upsert, 'd' delete (no CHECK: see above)
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (xid, id)
);

CREATE TABLE IF NOT EXISTS ${s}.polling_reader_state (
  index_key text PRIMARY KEY,
  leader text NOT NULL,
  generation text NOT NULL,
  position bigint NOT NULL,
  read_xid xid8 NOT NULL,
  read_id bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ${s}.polling_tracked_tables (
  table_name regclass PRIMARY KEY,
  feed text NOT NULL UNIQUE,
  key_column text NOT NULL,
  partition_column text
);

CREATE SEQUENCE IF NOT EXISTS ${s}.polling_wake_gate MINVALUE 0 MAXVALUE 1 START 1;
-- One bit per reader slot (0..62); installs from before per-reader gates had MAXVALUE 1. Only
-- then: ALTER SEQUENCE waits for every transaction that read the gate (each tracked write, a
-- prepared one for days) and queues every later writer behind it.
DO $gate$
BEGIN
  IF (SELECT seqmax FROM pg_catalog.pg_sequence
      WHERE seqrelid = '${s}.polling_wake_gate'::pg_catalog.regclass) < 9223372036854775807 THEN
    ALTER SEQUENCE ${s}.polling_wake_gate MAXVALUE 9223372036854775807;
  END IF;
END
$gate$;

-- The capture function's name for a feed: readable, at most 63 bytes, unique per feed.
CREATE OR REPLACE FUNCTION ${s}.polling_capture_function(p_feed text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $name$
  SELECT left('polling_capture_' || regexp_replace(lower(p_feed), '[^a-z0-9_]+', '_', 'g'), 46)
    || '_' || left(md5(p_feed), 16)
$name$;

-- Drops capture functions that no trigger calls any more (after a re-track or an untrack).
CREATE OR REPLACE FUNCTION ${s}.polling_drop_unused_capture(p_functions oid[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $unused$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid FROM pg_proc p
    WHERE p.oid = ANY (p_functions) AND p.pronamespace = '${s}'::regnamespace
      AND p.proname LIKE 'polling_capture\\_%' AND p.proname <> 'polling_capture_function'
      AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgfoid = p.oid)
  LOOP
    EXECUTE format('DROP FUNCTION %s', f);
  END LOOP;
END
$unused$;

-- Forgets tables dropped without polling_untrack (their feed names become free again, so a table
-- created again can be tracked under its feed) and drops their capture functions.
CREATE OR REPLACE FUNCTION ${s}.polling_forget_dropped() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $forget$
DECLARE v_functions oid[];
BEGIN
  WITH gone AS (
    DELETE FROM ${s}.polling_tracked_tables t
    WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.table_name)
    RETURNING t.feed
  )
  SELECT array_agg(p.oid) INTO v_functions FROM gone JOIN pg_proc p
    ON p.proname = ${s}.polling_capture_function(gone.feed) AND p.pronamespace = '${s}'::regnamespace;
  IF v_functions IS NOT NULL THEN
    PERFORM ${s}.polling_drop_unused_capture(v_functions);
  END IF;
END
$forget$;

-- Runs as its caller (the migrations' owner) with a fixed search_path: functions a writer planted
-- in a schema on the caller's path (format, quote_literal...) must never run with those rights.
CREATE OR REPLACE FUNCTION ${s}.polling_track(
  p_table regclass, p_key text, p_partition text DEFAULT NULL, p_feed text DEFAULT NULL
) RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $track$
DECLARE
  v_feed text := coalesce(p_feed, (SELECT relname FROM pg_class WHERE oid = p_table));
  v_fn text := ${s}.polling_capture_function(v_feed);
  v_old oid[] := ARRAY(SELECT t.tgfoid FROM (${ownTriggers}) t);
  v_trigger name;
  v_fn_oid oid;
  v_feed_expr text;
  v_body text;
BEGIN
  PERFORM ${s}.polling_forget_dropped();
  PERFORM 1 FROM pg_attribute WHERE attrelid = p_table AND attname = p_key AND attnum > 0 AND NOT attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'polling_track: table % has no column "%"', p_table, p_key;
  END IF;
  IF p_partition IS NOT NULL THEN
    PERFORM 1 FROM pg_attribute WHERE attrelid = p_table AND attname = p_partition AND attnum > 0 AND NOT attisdropped;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'polling_track: table % has no partition column "%"', p_table, p_partition;
    END IF;
    v_feed_expr := format('%L || '':'' || coalesce(r.%I::text, '''')', v_feed, p_partition);
  ELSE
    v_feed_expr := quote_literal(v_feed);
  END IF;

  v_body := format($b$
    BEGIN
      -- Only for the table tracked as this feed: a role allowed to EXECUTE this function (GRANT
      -- ... ON ALL FUNCTIONS) could attach it to a table of its own, whose key type's cast to
      -- text would then run that role's code with this function's (the owner's) rights. The oid
      -- of the table at track time is the fast test (no query per statement); a table restored
      -- from a dump has another oid and is looked up instead.
      IF TG_RELID <> %4$s THEN
        IF NOT EXISTS (SELECT 1 FROM ${s}.polling_tracked_tables
                       WHERE table_name = TG_RELID::regclass AND feed = %3$L) THEN
          RAISE EXCEPTION 'nestjs-polling: table %% is not tracked as feed %%', TG_RELID::regclass, %3$L
            USING HINT = 'a capture function writes only for the table polling_track gave it';
        END IF;
      END IF;
      IF TG_OP = 'INSERT' THEN
        INSERT INTO ${s}.polling_changes (feed, resource_id, op)
          SELECT %1$s, r.%2$I::text, 'u' FROM new_rows r;
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ${s}.polling_changes (feed, resource_id, op)
          SELECT %1$s, r.%2$I::text, 'd' FROM old_rows r;
      ELSE
        -- a row that left its feed or changed its key is a delete there and an upsert here
        WITH n AS (SELECT %1$s AS feed, r.%2$I::text AS rid FROM new_rows r),
             o AS (SELECT %1$s AS feed, r.%2$I::text AS rid FROM old_rows r)
        INSERT INTO ${s}.polling_changes (feed, resource_id, op)
          SELECT feed, rid, 'u' FROM n
          UNION ALL
          SELECT feed, rid, 'd' FROM (SELECT feed, rid FROM o EXCEPT SELECT feed, rid FROM n) gone;
      END IF;
      -- FOUND: the INSERT above wrote a change row. Some reader armed its bit of the gate: wake
      -- it, unless this server allows PREPARE TRANSACTION, which refuses a notifying transaction.
      IF FOUND AND coalesce(pg_sequence_last_value('${s}.polling_wake_gate'::regclass), 0) <> 0
         AND current_setting('max_prepared_transactions') = '0' THEN
        PERFORM pg_notify('${channel}', '');
      END IF;
      RETURN NULL;
    END
  $b$, v_feed_expr, p_key, v_feed, p_table::oid);

  EXECUTE format('CREATE OR REPLACE FUNCTION ${s}.%I() RETURNS trigger LANGUAGE plpgsql '
    'SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L', v_fn, v_body);
  EXECUTE format('REVOKE ALL ON FUNCTION ${s}.%I() FROM PUBLIC', v_fn);
  v_fn_oid := format('${s}.%I()', v_fn)::regprocedure;
  -- Trigger DDL locks the table against writers, and waits behind any transaction that wrote it
  -- (a prepared one may wait for days): when this change log's three triggers already call this
  -- function (a routine start with installSchema: true), the body replaced above is all that changes.
  IF (SELECT count(*) FILTER (WHERE t.tgfoid = v_fn_oid AND t.tgenabled <> 'D'
        AND t.tgname IN ('${ins}', '${upd}', '${del}')) <> 3 OR count(*) <> 3
      FROM (${ownTriggers}) t) THEN
    FOR v_trigger IN SELECT t.tgname FROM (${ownTriggers}) t LOOP
      EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, p_table);
    END LOOP;
    EXECUTE format('CREATE TRIGGER ${ins} AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.%I()', p_table, v_fn);
    EXECUTE format('CREATE TRIGGER ${upd} AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.%I()', p_table, v_fn);
    EXECUTE format('CREATE TRIGGER ${del} AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${s}.%I()', p_table, v_fn);
  END IF;

  PERFORM ${s}.polling_drop_unused_capture(v_old);

  INSERT INTO ${s}.polling_tracked_tables (table_name, feed, key_column, partition_column)
    VALUES (p_table, v_feed, p_key, p_partition)
    ON CONFLICT (table_name) DO UPDATE
      SET feed = EXCLUDED.feed, key_column = EXCLUDED.key_column, partition_column = EXCLUDED.partition_column;
END
$track$;

CREATE OR REPLACE FUNCTION ${s}.polling_untrack(p_table regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $untrack$
DECLARE
  v_old oid[] := ARRAY(SELECT t.tgfoid FROM (${ownTriggers}) t);
  v_trigger name;
BEGIN
  PERFORM ${s}.polling_forget_dropped(); -- also a dropped p_table: there is no trigger to drop
  IF EXISTS (SELECT 1 FROM pg_class WHERE oid = p_table) THEN
    FOR v_trigger IN SELECT t.tgname FROM (${ownTriggers}) t LOOP
      EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, p_table);
    END LOOP;
    PERFORM ${s}.polling_drop_unused_capture(v_old);
    DELETE FROM ${s}.polling_tracked_tables WHERE table_name = p_table;
  END IF;
END
$untrack$;
`;
}

/** Drops everything installChangeLogSql created (tracked tables lose their triggers first). */
export function uninstallChangeLogSql(schema: string): string {
  const s = `"${assertSchemaName(schema)}"`;
  return `
DO $drop$
DECLARE t regclass;
BEGIN
  IF to_regclass('${s}.polling_tracked_tables') IS NOT NULL THEN
    FOR t IN SELECT table_name FROM ${s}.polling_tracked_tables LOOP
      PERFORM ${s}.polling_untrack(t);
    END LOOP;
  END IF;
END
$drop$;
DROP FUNCTION IF EXISTS ${s}.polling_track(regclass, text, text, text);
DROP FUNCTION IF EXISTS ${s}.polling_untrack(regclass);
DROP FUNCTION IF EXISTS ${s}.polling_forget_dropped();
DROP FUNCTION IF EXISTS ${s}.polling_drop_unused_capture(oid[]);
DROP FUNCTION IF EXISTS ${s}.polling_capture_function(text);
DROP SEQUENCE IF EXISTS ${s}.polling_wake_gate;
DROP TABLE IF EXISTS ${s}.polling_tracked_tables;
DROP TABLE IF EXISTS ${s}.polling_reader_state;
DROP TABLE IF EXISTS ${s}.polling_changes;
`;
}

/**
 * Re-tracks every tracked table with its recorded settings, so each gets its capture function
 * regenerated by the current polling_track (run after installChangeLogSql by an upgrade).
 */
export function retrackAllSql(schema: string): string {
  const s = `"${assertSchemaName(schema)}"`;
  return `
DO $retrack$
DECLARE t record;
BEGIN
  PERFORM ${s}.polling_forget_dropped(); -- a table dropped without polling_untrack
  FOR t IN SELECT table_name, key_column, partition_column, feed FROM ${s}.polling_tracked_tables
    ORDER BY table_name::oid
  LOOP
    PERFORM ${s}.polling_track(t.table_name, t.key_column, t.partition_column, t.feed);
  END LOOP;
END
$retrack$;
`;
}
