/* projection.c - the device projection's SQL and its JSON. */
#include "projection.h"

#include <cJSON.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define TAG "projection"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS devices(source TEXT NOT NULL, subject TEXT NOT NULL,"
	" last_seq INTEGER NOT NULL DEFAULT -1, last_seen TEXT NOT NULL DEFAULT '',"
	" last_type TEXT NOT NULL DEFAULT '', reading_seq INTEGER NOT NULL DEFAULT -1,"
	" reading TEXT, alarm_seq INTEGER NOT NULL DEFAULT -1, alarm INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(source, subject));"
	"CREATE TABLE IF NOT EXISTS device_counts(source TEXT NOT NULL, subject TEXT NOT NULL,"
	" type TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(source, subject, type));";

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
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
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
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_DONE)
		return ES_OK;
	es_error(TAG, "%s: %s", sqlite3_sql(st), sqlite3_errmsg(p->db));
	return (rc & 0xff) == SQLITE_FULL ? ES_EFULL : ES_EIO;
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
	int rc = sqlite3_exec(p->db, "DELETE FROM devices; DELETE FROM device_counts;", NULL, NULL,
			      NULL);
	return rc == SQLITE_OK ? ES_OK : ES_EIO;
}

static es_err prepare(fleet_projection *p)
{
	const char *const sql[ST_N] = {sql_row, sql_last, sql_reading, sql_alarm, sql_count};
	if (sqlite3_exec(p->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		es_error(TAG, "schema: %s", sqlite3_errmsg(p->db));
		return ES_EIO;
	}
	for (int i = 0; i < ST_N; i++)
		if (sqlite3_prepare_v3(p->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &p->st[i],
				       NULL) != SQLITE_OK) {
			es_error(TAG, "%s: %s", sql[i], sqlite3_errmsg(p->db));
			return ES_EIO;
		}
	return ES_OK;
}

es_err fleet_projection_new(es_consumer *c, fleet_projection **out)
{
	fleet_projection *p = calloc(1, sizeof *p);
	if (!c || !out || !p) {
		free(p);
		return c && out ? ES_ENOMEM : ES_EINVAL;
	}
	p->db = es_consumer_db(c);
	es_err err = prepare(p);
	if (!err)
		err = es_consumer_on(c, "#", apply, p);
	if (!err)
		err = es_consumer_on_reset(c, reset, p);
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
		sqlite3_finalize(p->st[i]);
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

static es_err add_counts(sqlite3 *db, cJSON *devices)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT type, n FROM device_counts WHERE source = ?1 AND"
			       " subject = ?2 ORDER BY type",
			       -1, &st, NULL) != SQLITE_OK)
		return ES_EIO;
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
	sqlite3_finalize(st);
	return ES_OK;
}

static es_err read_devices(sqlite3 *db, cJSON *devices)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "SELECT source, subject, last_seq, last_seen, last_type,"
			       " reading_seq, reading, alarm FROM devices ORDER BY source, subject",
			       -1, &st, NULL) != SQLITE_OK)
		return ES_EIO;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		cJSON_AddItemToArray(devices, device_json(st));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? add_counts(db, devices) : ES_EIO;
}

es_err fleet_projection_devices_json(const char *path, char **out)
{
	sqlite3 *db = NULL;
	es_err err = ES_EIO;
	cJSON *o = cJSON_CreateObject();
	cJSON *devices = cJSON_AddArrayToObject(o, "devices");
	if (!devices)
		goto out;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(db, 5000);
	/* One read transaction: devices and their counts from one commit. */
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	err = read_devices(db, devices);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (!err && !(*out = cJSON_PrintUnformatted(o)))
		err = ES_ENOMEM;
out:
	if (err == ES_EIO)
		es_error(TAG, "%s: reading devices: %s", path, db ? sqlite3_errmsg(db) : "open");
	sqlite3_close(db);
	cJSON_Delete(o);
	return err;
}
