/* projection_test.c - fleet-state's projection rules (fleet-state/
 * projection.c) through the consumer: newest by sequence whatever the
 * arrival order, reading and alarm from their own newest events, counts by
 * distinct id, events without subject, the JSON, and a rebuild that gives
 * the same JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tmpdir.h"
#include "consumer.h"
#include "projection.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	return es_tmpdir_make(dir, sizeof dir, "projection-test");
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct fx {
	char path[128];
	es_consumer *c;
	fleet_projection *p;
};

static void open_snap(struct fx *f, const char *name, uint64_t every, uint64_t keep)
{
	snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
	es_consumer_opts o = {
		.path = f->path, .keep_log = true, .snapshot_every = every, .log_keep = keep};
	assert_int_equal(es_consumer_new(&o, &f->c), ES_OK);
	assert_int_equal(fleet_projection_new(f->c, &f->p), ES_OK);
}

static void open_fx(struct fx *f, const char *name)
{
	open_snap(f, name, 0, 0);
}

static void close_fx(struct fx *f)
{
	fleet_projection_free(f->p);
	es_consumer_free(f->c);
}

/* Applies one event (its own batch). subject NULL: none. */
static void send(struct fx *f, const char *source, const char *subject, const char *type,
		 unsigned seq, const char *data)
{
	char body[1024], id[64], subj[128] = "";
	snprintf(id, sizeof id, "%s-%u", source, seq);
	if (subject)
		snprintf(subj, sizeof subj, "\"subject\":\"%s\",", subject);
	snprintf(body, sizeof body,
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"%s\",\"type\":\"%s\",%s"
		 "\"time\":\"2026-11-27T07:00:%02u.000Z\",\"sequence\":\"%u\",\"data\":%s}",
		 id, source, type, subj, seq % 60, seq, data);
	es_delivery d = {.where = "test", .body = body, .len = strlen(body)};
	assert_int_equal(es_consumer_apply(f->c, &d, 1), ES_OK);
}

/* The JSON text (malloc'd), through a heap box (gcc's -Wdangling-pointer
 * takes the address of a local passed as an out-parameter for a pointer
 * into it). */
static char *devices(struct fx *f)
{
	char **box = calloc(1, sizeof *box);
	assert_non_null(box);
	assert_int_equal(fleet_projection_devices_json(f->path, box), ES_OK);
	char *json = *box;
	free(box);
	return json;
}

static void newest_wins_whatever_the_order(void **state)
{
	(void)state;
	struct fx f;
	open_fx(&f, "order.db");
	send(&f, "/s1/gw1", "dev-1", "sensor.reading", 5, "{\"t\":5}");
	send(&f, "/s1/gw1", "dev-1", "alarm.cleared", 6, "{}");
	/* Late, older events: they count, but change nothing else. */
	send(&f, "/s1/gw1", "dev-1", "sensor.reading", 3, "{\"t\":3}");
	send(&f, "/s1/gw1", "dev-1", "alarm.raised", 4, "{}");
	send(&f, "/s1/gw1", "dev-1", "sensor.reading", 3, "{\"t\":3}"); /* duplicate id */
	char *json = devices(&f);
	assert_string_equal(json,
			    "{\"devices\":[{\"source\":\"/s1/gw1\",\"subject\":\"dev-1\","
			    "\"last_seen\":\"2026-11-27T07:00:06.000Z\","
			    "\"last_type\":\"alarm.cleared\",\"last_sequence\":6,"
			    "\"reading\":{\"t\":5},\"alarm\":false,\"counts\":"
			    "{\"alarm.cleared\":1,\"alarm.raised\":1,\"sensor.reading\":2}}]}");
	free(json);
	/* A newer raise sets the alarm; a newer reading replaces the reading. */
	send(&f, "/s1/gw1", "dev-1", "alarm.raised", 9, "{}");
	send(&f, "/s1/gw1", "dev-1", "sensor.reading", 8, "{\"t\":8}");
	json = devices(&f);
	assert_non_null(strstr(json, "\"last_type\":\"alarm.raised\",\"last_sequence\":9,"
				     "\"reading\":{\"t\":8},\"alarm\":true"));
	free(json);
	close_fx(&f);
}

/* Where needle is in hay, or -1. */
static long at(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);
	return p ? (long)(p - hay) : -1;
}

static void devices_sorted_and_subjectless_ignored(void **state)
{
	(void)state;
	struct fx f;
	open_fx(&f, "sorted.db");
	send(&f, "/s2/gw1", "dev-a", "sensor.reading", 1, "{\"t\":1}");
	send(&f, "/s1/gw2", "dev-b", "device.registered", 1, "{}");
	send(&f, "/s1/gw2", "dev-a", "sensor.reading", 2, "[1,2]");
	send(&f, "/s1/gw2", NULL, "node.started", 3, "{}");
	char *json = devices(&f);
	long a = at(json, "\"source\":\"/s1/gw2\",\"subject\":\"dev-a\"");
	long b = at(json, "\"source\":\"/s1/gw2\",\"subject\":\"dev-b\"");
	long c = at(json, "\"source\":\"/s2/gw1\",\"subject\":\"dev-a\"");
	assert_true(a >= 0 && a < b && b < c);
	assert_null(strstr(json, "node.started"));
	assert_non_null(strstr(json, "\"reading\":[1,2]"));
	assert_non_null(strstr(json, "\"last_type\":\"device.registered\",\"last_sequence\":1,"
				     "\"reading\":null,\"alarm\":false"));
	es_consumer_stats st;
	es_consumer_stats_get(f.c, &st);
	assert_int_equal(st.applied, 4); /* the subjectless one counts in the stats */
	free(json);
	close_fx(&f);
}

/* Events i = from..to, one batch each: old and new interleaved, readings
 * and alarms, two sources and two devices. */
static void send_mixed(struct fx *f, unsigned from, unsigned to)
{
	for (unsigned i = from; i <= to; i++) {
		unsigned seq = i % 2 ? i : 1000 - i;
		char data[32];
		snprintf(data, sizeof data, "{\"n\":%u}", seq);
		send(f, i % 3 ? "/s1/gw1" : "/s1/gw2", i % 7 ? "dev-1" : "dev-2",
		     seq % 5	? "sensor.reading"
		     : seq % 10 ? "alarm.raised"
				: "alarm.cleared",
		     seq, data);
	}
}

static void rebuild_gives_the_same_state(void **state)
{
	(void)state;
	struct fx f;
	open_fx(&f, "rebuild.db");
	send_mixed(&f, 1, 200);
	char *before = devices(&f);
	es_consumer_rebuilt r;
	assert_int_equal(es_consumer_rebuild(f.c, false, &r), ES_OK);
	assert_int_equal(r.applied, 200);
	assert_int_equal(r.snapshot_n, 0); /* none taken: from scratch */
	char *after = devices(&f);
	assert_string_equal(before, after);
	free(before);
	free(after);
	close_fx(&f);
}

static int64_t count(struct fx *f, const char *sql)
{
	int64_t v = -1;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(es_consumer_db(f->c), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Every 50 events a snapshot of the tables, and the log trimmed to the 10
 * before it: the log stays bounded, and --rebuild from the snapshot plus
 * the log after it gives the same devices, even with the tables emptied;
 * from scratch it gives only what the log kept. */
static void snapshot_bounds_the_log_and_rebuilds(void **state)
{
	(void)state;
	struct fx f;
	open_snap(&f, "snap.db", 50, 10);
	send_mixed(&f, 1, 230);
	assert_int_equal(count(&f, "SELECT count(*) FROM events"), 30 + 10);
	assert_int_equal(count(&f, "SELECT min(n) FROM events"), 191);
	assert_int_equal(count(&f, "SELECT n FROM snapshot"), 200);
	assert_int_equal(count(&f, "SELECT applied FROM snapshot"), 200);
	es_consumer_stats st;
	es_consumer_stats_get(f.c, &st);
	assert_int_equal(st.events, 40);
	assert_int_equal(st.snapshot_n, 200);
	assert_int_equal(st.applied, 230);
	char *before = devices(&f);
	assert_int_equal(sqlite3_exec(es_consumer_db(f.c),
				      "DELETE FROM devices; DELETE FROM device_counts", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	es_consumer_rebuilt r;
	assert_int_equal(es_consumer_rebuild(f.c, false, &r), ES_OK);
	assert_int_equal(r.snapshot_n, 200);
	assert_int_equal(r.applied, 30);
	char *after = devices(&f);
	assert_string_equal(before, after);
	free(after);
	assert_int_equal(es_consumer_rebuild(f.c, true, &r), ES_OK);
	assert_int_equal(r.snapshot_n, 0);
	assert_int_equal(r.applied, 40);
	assert_int_equal(r.trimmed, 190);
	assert_int_equal(count(&f, "SELECT sum(n) FROM device_counts"), 40);
	close_fx(&f);
	/* The numbering goes on after a reopen: the next snapshot at 250. */
	open_snap(&f, "snap.db", 50, 10);
	send_mixed(&f, 231, 250);
	assert_int_equal(count(&f, "SELECT n FROM snapshot"), 250);
	assert_int_equal(count(&f, "SELECT min(n) FROM events"), 241);
	free(before);
	close_fx(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(newest_wins_whatever_the_order),
		cmocka_unit_test(devices_sorted_and_subjectless_ignored),
		cmocka_unit_test(rebuild_gives_the_same_state),
		cmocka_unit_test(snapshot_bounds_the_log_and_rebuilds),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
