/* projection.c - the device projection's schema, SQL and JSON; written
 * through the consumer's store and read through a connection of its own,
 * both SQLite adapter connections (db.h). Its snapshot is a copy of its two
 * tables (snap_devices, snap_device_counts) in the same file. */
#include "projection.h"

#include <cJSON.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

#define TAG "projection"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS devices(source TEXT NOT NULL, subject TEXT NOT NULL,"
	" last_seq INTEGER NOT NULL DEFAULT -1, last_seen TEXT NOT NULL DEFAULT '',"
	" last_type TEXT NOT NULL DEFAULT '', reading_seq INTEGER NOT NULL DEFAULT -1,"
	" reading TEXT, alarm_seq INTEGER NOT NULL DEFAULT -1, alarm INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(source, subject));"
	"CREATE TABLE IF NOT EXISTS device_counts(source TEXT NOT NULL, subject TEXT NOT NULL,"
	" type TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(source, subject, type));"
	"CREATE TABLE IF NOT EXISTS snap_devices(source TEXT NOT NULL, subject TEXT NOT NULL,"
	" last_seq INTEGER NOT NULL, last_seen TEXT NOT NULL, last_type TEXT NOT NULL,"
	" reading_seq INTEGER NOT NULL, reading TEXT, alarm_seq INTEGER NOT NULL,"
	" alarm INTEGER NOT NULL, PRIMARY KEY(source, subject));"
	"CREATE TABLE IF NOT EXISTS snap_device_counts(source TEXT NOT NULL, subject TEXT NOT NULL,"
	" type TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(source, subject, type));";

/* The columns of devices, in the order both tables declare them. */
#define DEVICE_COLUMNS                                                                             \
	"source, subject, last_seq, last_seen, last_type, reading_seq, reading, alarm_seq, alarm"

/* Each statement binds ?1 source, ?2 subject, ?3 sequence, ?4 type, ?5 time,
 * ?6 data; a newer-only update says so in its WHERE. */
static const char *const sql_row = "INSERT OR IGNORE INTO devices(source, subject) VALUES(?1, ?2)";
static const char *const sql_last = "UPDATE devices SET last_seq = ?3, last_type = ?4,"
				    " last_seen = ?5 WHERE source = ?1 AND subject = ?2"
				    " AND last_seq <= ?3";
static const char *const sql_reading = "UPDATE devices SET reading_seq = ?3, reading = ?6"
				       " WHERE source = ?1 AND subject = ?2 AND reading_seq <= ?3";
static const char *const sql_alarm = "UPDATE devices SET alarm_seq = ?3,"
				     " alarm = (?4 = 'alarm.raised')"
				     " WHERE source = ?1 AND subject = ?2 AND alarm_seq <= ?3";
static const char *const sql_count = "INSERT INTO device_counts(source, subject, type, n)"
				     " VALUES(?1, ?2, ?4, 1) ON CONFLICT(source, subject, type)"
				     " DO UPDATE SET n = n + 1";

enum { ST_ROW, ST_LAST, ST_READING, ST_ALARM, ST_COUNT, ST_N };

struct fleet_projection {
	es_db *db;		/* the consumer's */
	sqlite3_stmt *st[ST_N]; /* out of db's cache until freed */
};

struct binds {
	const char *source, *subject, *type, *time, *data;
	sqlite3_int64 seq;
};

static es_err run(fleet_projection *p, int which, const struct binds *b)
{
	sqlite3_stmt *st = p->st[which];
	sqlite3_bind_text(st, 1, b->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, b->seq);
	sqlite3_bind_text(st, 4, b->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, b->time, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, b->data, -1, SQLITE_STATIC);
	es_err err = es_db_step_done(p->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

/* The event's data as compact JSON text (malloc'd; "null" when absent). */
static char *data_of(const char *json, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(json, len);
	cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
	char *text = d ? cJSON_PrintUnformatted(d) : NULL;
	cJSON_Delete(o);
	return text;
}

static es_err apply(void *arg, const es_event *ev, const char *json, size_t len)
{
	fleet_projection *p = arg;
	const char *type = es_event_type(ev);
	struct binds b = {es_event_source(ev),
			  es_event_subject(ev),
			  type,
			  es_event_time(ev) ? es_event_time(ev) : "",
			  NULL,
			  (sqlite3_int64)es_event_seq(ev)};
	if (!b.subject)
		return ES_OK;
	es_err err = run(p, ST_ROW, &b);
	if (!err)
		err = run(p, ST_LAST, &b);
	if (!err && strcmp(type, "sensor.reading") == 0) {
		char *data = data_of(json, len);
		b.data = data ? data : "null";
		err = run(p, ST_READING, &b);
		cJSON_free(data);
	}
	if (!err && strncmp(type, "alarm.", 6) == 0)
		err = run(p, ST_ALARM, &b);
	if (!err)
		err = run(p, ST_COUNT, &b);
	return err;
}

static es_err reset(void *arg)
{
	fleet_projection *p = arg;
	return es_db_exec(p->db, "DELETE FROM devices; DELETE FROM device_counts;");
}

/* The snapshot callbacks (consumer.h): the tables copied one way or the
 * other, inside the consumer's transaction. */
static es_err snap_save(void *arg)
{
	fleet_projection *p = arg;
	return es_db_exec(p->db, "DELETE FROM snap_devices; DELETE FROM snap_device_counts;"
				 "INSERT INTO snap_devices(" DEVICE_COLUMNS
				 ") SELECT " DEVICE_COLUMNS " FROM devices;"
				 "INSERT INTO snap_device_counts(source, subject, type, n)"
				 " SELECT source, subject, type, n FROM device_counts;");
}

static es_err snap_restore(void *arg)
{
	fleet_projection *p = arg;
	es_err err = reset(p);
	return err ? err
		   : es_db_exec(p->db, "INSERT INTO devices(" DEVICE_COLUMNS
				       ") SELECT " DEVICE_COLUMNS " FROM snap_devices;"
				       "INSERT INTO device_counts(source, subject, type, n)"
				       " SELECT source, subject, type, n FROM snap_device_counts;");
}

static es_err prepare(fleet_projection *p)
{
	const char *const sql[ST_N] = {sql_row, sql_last, sql_reading, sql_alarm, sql_count};
	es_err err = es_db_exec(p->db, schema);
	for (int i = 0; i < ST_N && !err; i++)
		err = es_db_stmt(p->db, sql[i], &p->st[i]);
	return err;
}

es_err fleet_projection_new(es_consumer *c, fleet_projection **out)
{
	fleet_projection *p = calloc(1, sizeof *p);
	if (!c || !out || !p) {
		free(p);
		return c && out ? ES_ENOMEM : ES_EINVAL;
	}
	p->db = es_consumer_store(c);
	es_err err = prepare(p);
	if (!err)
		err = es_consumer_on(c, "#", apply, p);
	if (!err)
		err = es_consumer_on_reset(c, reset, p);
	if (!err)
		err = es_consumer_on_snapshot(c, snap_save, snap_restore, p);
	if (err) {
		fleet_projection_free(p);
		return err;
	}
	*out = p;
	return ES_OK;
}

void fleet_projection_free(fleet_projection *p)
{
	if (!p)
		return;
	for (int i = 0; i < ST_N; i++)
		es_db_release(p->db, p->st[i]);
	free(p);
}

/* ---- reading ------------------------------------------------------------ */

static cJSON *device_json(sqlite3_stmt *st)
{
	cJSON *d = cJSON_CreateObject();
	const char *reading = (const char *)sqlite3_column_text(st, 6);
	cJSON_AddStringToObject(d, "source", (const char *)sqlite3_column_text(st, 0));
	cJSON_AddStringToObject(d, "subject", (const char *)sqlite3_column_text(st, 1));
	cJSON_AddStringToObject(d, "last_seen", (const char *)sqlite3_column_text(st, 3));
	cJSON_AddStringToObject(d, "last_type", (const char *)sqlite3_column_text(st, 4));
	cJSON_AddNumberToObject(d, "last_sequence", (double)sqlite3_column_int64(st, 2));
	cJSON *r = reading ? cJSON_Parse(reading) : NULL;
	cJSON_AddItemToObject(d, "reading", r ? r : cJSON_CreateNull());
	cJSON_AddBoolToObject(d, "alarm", sqlite3_column_int(st, 7) != 0);
	cJSON_AddObjectToObject(d, "counts");
	return d;
}

static es_err add_counts(es_db *db, cJSON *devices)
{
	sqlite3_stmt *st;
	es_err err = es_db_stmt(db,
				"SELECT type, n FROM device_counts WHERE source = ?1 AND"
				" subject = ?2 ORDER BY type",
				&st);
	if (err)
		return err;
	cJSON *d;
	cJSON_ArrayForEach(d, devices)
	{
		cJSON *counts = cJSON_GetObjectItemCaseSensitive(d, "counts");
		sqlite3_bind_text(st, 1, cJSON_GetStringValue(cJSON_GetObjectItem(d, "source")), -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 2, cJSON_GetStringValue(cJSON_GetObjectItem(d, "subject")),
				  -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW)
			cJSON_AddNumberToObject(counts, (const char *)sqlite3_column_text(st, 0),
						(double)sqlite3_column_int64(st, 1));
		sqlite3_reset(st);
	}
	es_db_release(db, st);
	return ES_OK;
}

static es_err read_devices(es_db *db, cJSON *devices)
{
	sqlite3_stmt *st;
	es_err err =
		es_db_stmt(db,
			   "SELECT source, subject, last_seq, last_seen, last_type,"
			   " reading_seq, reading, alarm FROM devices ORDER BY source, subject",
			   &st);
	if (err)
		return err;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cJSON_AddItemToArray(devices, device_json(st));
	err = rc == SQLITE_DONE ? ES_OK : es_db_err(db, rc, "reading devices");
	es_db_release(db, st);
	return err ? err : add_counts(db, devices);
}

es_err fleet_projection_devices_json(const char *path, char **out)
{
	es_db *db = NULL;
	es_db_opts o = {.path = path, .tag = TAG, .readonly = true};
	cJSON *o_json = cJSON_CreateObject();
	cJSON *devices = cJSON_AddArrayToObject(o_json, "devices");
	es_err err = devices ? es_db_open(&o, &db) : ES_ENOMEM;
	if (!err)
		err = es_db_begin_read(db); /* devices and their counts from one commit */
	if (!err) {
		err = read_devices(db, devices);
		es_db_rollback(db);
	}
	if (!err && !(*out = cJSON_PrintUnformatted(o_json)))
		err = ES_ENOMEM;
	es_db_close(db);
	cJSON_Delete(o_json);
	/* The adapter logged what failed; callers are promised ES_EIO. */
	return err && err != ES_ENOMEM ? ES_EIO : err;
}
