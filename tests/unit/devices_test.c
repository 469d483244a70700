/* devices_test.c - the agent's device table: the go-back-N receiver's
 * verdicts (take, duplicate, early, unknown), hellos (new devices, new
 * boots, records lost at the device), a batch's commit or failure, and the
 * x.dev.<id> state through a real journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices.h"

static devices *table(size_t max)
{
	devices *t = NULL;
	assert_int_equal(devices_new(max, &t), ES_OK);
	assert_non_null(t);
	return t;
}

/* A hello from a device holding nothing (its next record is seq), at time
 * 0. */
static dev *hello(devices *t, uint32_t id, uint32_t seq, uint32_t boot, dev_hello *h)
{
	return devices_hello(t, id, &(dev_greeting){.seq = seq, .next_seq = seq, .boot = boot}, h);
}

/* A hello from a device holding seq .. next - 1, at now_ms. */
static dev *hello_at(devices *t, uint32_t id, uint32_t seq, uint32_t next, uint32_t boot,
		     uint64_t now_ms, dev_hello *h)
{
	dev_greeting g = {.seq = seq, .next_seq = next, .boot = boot, .now_ms = now_ms};
	return devices_hello(t, id, &g, h);
}

/* A hello that must be news; staged. */
static dev *greet(devices *t, uint32_t id, uint32_t seq, uint32_t boot)
{
	dev_hello h;
	dev *d = hello(t, id, seq, boot, &h);
	assert_non_null(d);
	assert_true(h.news);
	assert_true(devices_stage_hello(t, d, boot));
	return d;
}

/* Takes record seq, which must be the next one expected. */
static void take(devices *t, uint32_t id, uint32_t seq)
{
	dev *d;
	assert_int_equal(devices_record(t, id, seq, &d), DEV_TAKE);
	assert_true(devices_take(t, d));
}

struct acks {
	dev *d[8];
	size_t n;
};

static void on_ack(void *ctx, dev *d)
{
	struct acks *a = ctx;
	assert_true(a->n < 8);
	a->d[a->n++] = d;
}

/* The staged devices' values, "key=value;...". */
static void staged(devices *t, char *out, size_t cap)
{
	es_journal_kv kv[8];
	size_t n = devices_staged(t), len = 0;
	assert_true(n <= 8);
	devices_staged_kv(t, kv);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s=%.*s;", kv[i].key, (int)kv[i].len,
					(const char *)kv[i].value);
}

/* ---- records -------------------------------------------------------------- */

static void new_device_starts_where_it_says(void **state)
{
	devices *t = table(10);
	dev *d, *same;
	dev_hello h;
	char kv[128];
	struct acks acks = {0};
	d = hello(t, 7, 100, 1, &h);
	assert_non_null(d);
	assert_true(h.registered && h.news);
	assert_int_equal(h.lost, 0);
	assert_int_equal(d->expected, 100);
	assert_true(devices_stage_hello(t, d, 1));
	take(t, 7, 100);
	assert_int_equal(devices_record(t, 7, 100, &same), DEV_DUPLICATE); /* in this batch */
	assert_ptr_equal(same, d);
	assert_int_equal(devices_record(t, 7, 102, &same), DEV_EARLY); /* 101 lost on the way */
	take(t, 7, 101);
	assert_int_equal(devices_staged(t), 1); /* one device, however many changes */
	staged(t, kv, sizeof kv);
	assert_string_equal(kv, "x.dev.7=1 101 2;"); /* boot, last taken, records */
	assert_false(d->known);
	devices_done(t, true, on_ack, &acks);
	assert_int_equal(acks.n, 1);
	assert_ptr_equal(acks.d[0], d);
	assert_int_equal(d->last, 101); /* what the ACK says */
	assert_true(d->known);
	assert_false(d->dirty);
	assert_int_equal(devices_staged(t), 0);
	assert_int_equal(devices_record(t, 7, 101, &same), DEV_DUPLICATE);
	take(t, 7, 102);
	devices_free(t);
	devices_free(NULL);
}

static void unknown_device(void **state)
{
	devices *t = table(10);
	dev *d = (dev *)1;
	assert_int_equal(devices_record(t, 3, 1, &d), DEV_UNKNOWN);
	assert_null(d);
	/* A new device whose registration was not journaled must say hello
	 * again before its records are taken. */
	greet(t, 3, 1, 1);
	take(t, 3, 1);
	devices_done(t, false, on_ack, NULL);
	assert_int_equal(devices_record(t, 3, 1, &d), DEV_UNKNOWN);
	devices_free(t);
}

/* A batch that failed: nothing acked, and what was taken is taken again. */
static void failed_batch_is_taken_again(void **state)
{
	devices *t = table(10);
	struct acks acks = {0};
	dev *d = greet(t, 5, 1, 1);
	devices_done(t, true, on_ack, &acks);
	take(t, 5, 1);
	take(t, 5, 2);
	assert_int_equal(d->records, 2);
	devices_done(t, false, on_ack, &acks);
	assert_int_equal(acks.n, 1); /* only the first batch's */
	assert_int_equal(d->last, 0);
	assert_int_equal(d->expected, 1);
	assert_true(d->greeted); /* known: no new hello needed */
	take(t, 5, 1);
	devices_free(t);
}

/* Sequences are compared modulo 2^32. */
static void sequence_wraps(void **state)
{
	devices *t = table(10);
	dev *d;
	greet(t, 9, UINT32_MAX - 1, 1);
	take(t, 9, UINT32_MAX - 1);
	take(t, 9, UINT32_MAX);
	take(t, 9, 0);
	take(t, 9, 1);
	assert_int_equal(devices_record(t, 9, UINT32_MAX, &d), DEV_DUPLICATE);
	assert_int_equal(devices_record(t, 9, 3, &d), DEV_EARLY);
	devices_free(t);
}

/* ---- hellos --------------------------------------------------------------- */

static void hello_of_a_known_device(void **state)
{
	devices *t = table(10);
	dev_hello h;
	devices_counts c;
	dev *d = greet(t, 4, 10, 1);
	take(t, 4, 10);
	devices_done(t, true, NULL, NULL);
	/* Same boot, holding what was journaled: nothing new, re-ack. */
	assert_ptr_equal(hello_at(t, 4, 10, 11, 1, 0, &h), d);
	assert_false(h.registered || h.news || h.lost);
	/* A new boot: news, not a registration. */
	hello(t, 4, 11, 2, &h);
	assert_false(h.registered);
	assert_true(h.news);
	assert_int_equal(h.lost, 0);
	assert_true(devices_stage_hello(t, d, 2));
	devices_done(t, true, NULL, NULL);
	assert_int_equal(d->boot, 2);
	/* A cold boot lost 11..14: the device now holds from 15. */
	hello(t, 4, 15, 3, &h);
	assert_true(h.news);
	assert_int_equal(h.lost, 4);
	assert_int_equal(d->expected, 15);
	assert_int_equal(d->last, 14);
	devices_counts_get(t, &c);
	assert_int_equal(c.lost, 4);
	assert_int_equal(c.devices, 1);
	devices_free(t);
}

/* A registration already in this batch is not news twice. */
static void registration_once_per_batch(void **state)
{
	devices *t = table(10);
	dev_hello h;
	greet(t, 8, 1, 1);
	hello(t, 8, 1, 1, &h);
	assert_true(h.registered);
	assert_false(h.news);
	/* But if that batch fails, the next hello registers it again. */
	devices_done(t, false, NULL, NULL);
	hello(t, 8, 1, 1, &h);
	assert_true(h.registered && h.news);
	devices_free(t);
}

/* A device at 1,000,000 records (journaled) and boot 5. */
static dev *far_along(devices *t, uint32_t id)
{
	dev *d = greet(t, id, 999999, 5);
	take(t, id, 999999);
	devices_done(t, true, NULL, NULL);
	assert_int_equal(d->expected, 1000000);
	return d;
}

/* A device whose sequence began again (its memory wiped, or replaced) holds
 * new records under numbers the table has journaled before: they are taken,
 * never called duplicates (acked and dropped). */
static void restarted_sequence_is_new_data(void **state)
{
	static const struct {
		uint32_t seq, next, boot;
	} lives[] = {
		{1, 1, 6},	 /* a new boot, the counter back at 1 */
		{1, 3, 1},	 /* its boot count wiped too, holding 1 and 2 */
		{1, 1, 5},	 /* wiped back to the same boot count */
		{5000, 5010, 2}, /* another unit: boot count lower, sequence anywhere */
	};
	for (size_t i = 0; i < sizeof lives / sizeof lives[0]; i++) {
		devices *t = table(10);
		dev_hello h;
		devices_counts c;
		dev *d = far_along(t, 1);
		assert_ptr_equal(hello_at(t, 1, lives[i].seq, lives[i].next, lives[i].boot, 0, &h),
				 d);
		assert_true(h.restarted && h.news);
		assert_false(h.registered || h.refused);
		assert_int_equal(h.lost, 0);
		assert_true(devices_stage_hello(t, d, lives[i].boot));
		take(t, 1, lives[i].seq);
		devices_done(t, true, NULL, NULL);
		assert_int_equal(d->last, lives[i].seq);
		assert_int_equal(d->boot, lives[i].boot);
		devices_counts_get(t, &c);
		assert_int_equal(c.restarts, 1);
		assert_int_equal(c.lost, 0);
		devices_free(t);
	}
}

/* A warm reset keeps the ring: its oldest held may be journaled already
 * (the ACK was lost), and its next record is past what was taken. That is
 * the same sequence, not a restart: re-ack, nothing taken twice. */
static void warm_reset_is_not_a_restart(void **state)
{
	devices *t = table(10);
	dev_hello h;
	dev *d = far_along(t, 1), *same;
	assert_ptr_equal(hello_at(t, 1, 999990, 1000003, 6, 0, &h), d);
	assert_false(h.restarted || h.refused);
	assert_int_equal(h.lost, 0);
	assert_true(h.news); /* its boot */
	assert_int_equal(d->expected, 1000000);
	assert_int_equal(devices_record(t, 1, 999990, &same), DEV_DUPLICATE);
	devices_free(t);
}

/* A hello whose gap its boots cannot explain is refused and counted, and
 * moves nothing: the device's records go on being taken. */
static void implausible_hello_refused(void **state)
{
	devices *t = table(10);
	dev_hello h;
	devices_counts c;
	dev *d = far_along(t, 1);
	/* a cold boot skips at most DEVICES_BOOT_SKIP a boot */
	assert_null(hello_at(t, 1, 1000000 + 999988, 1000000 + 999988, 6, 1000, &h));
	assert_true(h.refused);
	assert_null(hello_at(t, 1, 1000000 + DEVICES_BOOT_SKIP + 1, 1000000 + DEVICES_BOOT_SKIP + 1,
			     6, 1000, &h));
	assert_true(h.refused);
	assert_null(hello_at(t, 1, 1000000 + 2 * DEVICES_BOOT_SKIP + 1,
			     1000000 + 2 * DEVICES_BOOT_SKIP + 1, 7, 1000, &h));
	/* records it cannot hold: next before the oldest, or more than a ring */
	assert_null(hello_at(t, 2, 10, 9, 1, 1000, &h));
	assert_true(h.refused);
	assert_null(hello_at(t, 2, 10, 10 + DEVICES_HELD + 1, 1, 1000, &h));
	assert_null(devices_find(t, 2));
	devices_counts_get(t, &c);
	assert_int_equal(c.implausible, 5);
	assert_int_equal(c.lost, 0);
	assert_int_equal(c.devices, 1);
	assert_int_equal(d->expected, 1000000);
	take(t, 1, 1000000);
	/* within what its boots explain: records lost at the device */
	assert_ptr_equal(hello_at(t, 1, 1000001 + 3 * DEVICES_BOOT_SKIP,
				  1000001 + 3 * DEVICES_BOOT_SKIP, 8, 1000, &h),
			 d);
	assert_int_equal(h.lost, 3 * DEVICES_BOOT_SKIP);
	devices_free(t);
}

/* ... unless the device keeps saying it, with nothing taken from it, for
 * DEVICES_INSIST_MS: then its sequence begins again there. */
static void insisting_hello_is_taken(void **state)
{
	devices *t = table(10);
	dev_hello h;
	dev *d = far_along(t, 1);
	const uint32_t far = 1000000 + 999988;
	assert_null(hello_at(t, 1, far, far, 6, 1000, &h));
	assert_null(hello_at(t, 1, far, far, 6, 1000 + DEVICES_INSIST_MS - 1, &h));
	/* a record taken where the table expects the device: it is alive there */
	take(t, 1, 1000000);
	assert_null(hello_at(t, 1, far, far, 6, 1000 + DEVICES_INSIST_MS, &h));
	assert_null(hello_at(t, 1, far, far, 6, 1000 + 2 * DEVICES_INSIST_MS - 1, &h));
	/* another sequence starts the wait again */
	assert_null(hello_at(t, 1, far + 1, far + 1, 6, 1000 + 2 * DEVICES_INSIST_MS, &h));
	assert_null(hello_at(t, 1, far + 1, far + 1, 6, 1000 + 3 * DEVICES_INSIST_MS - 1, &h));
	assert_ptr_equal(hello_at(t, 1, far + 1, far + 1, 6, 1000 + 3 * DEVICES_INSIST_MS, &h), d);
	assert_true(h.restarted && h.news);
	assert_int_equal(h.lost, 0);
	assert_int_equal(d->expected, far + 1);
	devices_free(t);
}

/* A device in step sends nothing DEVICES_HELD or more from what is
 * expected: such a record is out of step, never acked. */
static void out_of_step_records(void **state)
{
	devices *t = table(10);
	dev *d;
	far_along(t, 1);
	assert_int_equal(devices_record(t, 1, 1000000 + DEVICES_HELD - 1, &d), DEV_EARLY);
	assert_int_equal(devices_record(t, 1, 1000000 + DEVICES_HELD, &d), DEV_OUT_OF_STEP);
	assert_int_equal(devices_record(t, 1, 1000000 - DEVICES_HELD, &d), DEV_DUPLICATE);
	assert_int_equal(devices_record(t, 1, 1000000 - DEVICES_HELD - 1, &d), DEV_OUT_OF_STEP);
	assert_int_equal(devices_record(t, 1, 1, &d), DEV_OUT_OF_STEP);
	assert_non_null(d);
	devices_free(t);
}

/* ---- the table ------------------------------------------------------------ */

static void table_full(void **state)
{
	devices *t = table(2);
	dev_hello h;
	devices_counts c;
	greet(t, 1, 1, 1);
	greet(t, 2, 1, 1);
	assert_null(hello(t, 3, 1, 1, &h));
	assert_null(hello(t, 4, 1, 1, &h));
	assert_non_null(hello(t, 1, 1, 1, &h)); /* known ones still */
	devices_counts_get(t, &c);
	assert_int_equal(c.devices, 2);
	assert_int_equal(c.refused, 2);
	devices_free(t);
}

/* The staged list points into the table: it grows only between batches,
 * and a device it had to refuse for that is not counted as refused. */
static void grows_between_batches(void **state)
{
	devices *t = table(1000);
	dev_hello h;
	devices_counts c;
	const dev *all[100];
	dev *first = greet(t, 1, 1, 1);
	for (uint32_t id = 2; id <= 32; id++)
		assert_non_null(hello(t, id, 1, 1, &h));
	assert_null(hello(t, 33, 1, 1, &h)); /* would grow under the staged list */
	assert_int_equal(first->id, 1);
	char kv[128];
	staged(t, kv, sizeof kv);
	assert_string_equal(kv, "x.dev.1=1 0 0;");
	devices_done(t, true, NULL, NULL);
	for (uint32_t id = 33; id <= 100; id++)
		assert_non_null(hello(t, id, 1, 1, &h));
	devices_counts_get(t, &c);
	assert_int_equal(c.devices, 100);
	assert_int_equal(c.refused, 0);
	assert_int_equal(devices_list(t, all), 100);
	for (uint32_t id = 1; id <= 100; id++)
		assert_int_equal(devices_find(t, id)->id, id);
	assert_true(devices_find(t, 1)->known); /* what was committed moved with it */
	assert_null(devices_find(t, 101));
	devices_free(t);
}

static void seen_and_connections(void **state)
{
	devices *t = table(10);
	static char a, b; /* two connections, as far as the table can tell */
	dev *d1 = greet(t, 1, 1, 1), *d2 = greet(t, 2, 1, 1);
	d1->conn = (struct conn *)(void *)&a;
	d2->conn = (struct conn *)(void *)&b;
	devices_forget_conn(t, (struct conn *)(void *)&a);
	assert_null(d1->conn);
	assert_non_null(d2->conn);
	devices_seen(t, 2, "serial:/dev/ttyS0", 1234);
	devices_seen(t, 77, "nowhere", 1); /* unknown: nothing */
	assert_int_equal(d2->last_seen_ms, 1234);
	assert_string_equal(d2->link, "serial:/dev/ttyS0");
	assert_int_equal(d1->last_seen_ms, 0);
	char longname[200];
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	devices_seen(t, 1, longname, 5);
	assert_int_equal(strlen(d1->link), sizeof d1->link - 1);
	devices_free(t);
}

/* ---- through the journal -------------------------------------------------- */

static void loads_what_was_journaled(void **state)
{
	char dir[] = "/tmp/es-devices-test-XXXXXX", path[64], name[96];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/journal.db", dir);
	es_journal_opts o = {.path = path, .sync = ES_SYNC_NORMAL, .source = "/s/n"};
	es_journal *j = NULL;
	assert_int_equal(es_journal_open(&o, &j), ES_OK);
	/* State written by a table, and values that are not a device's. */
	devices *t = table(10);
	greet(t, 5, 40, 3);
	take(t, 5, 40);
	take(t, 5, 41);
	es_journal_kv kv[4];
	devices_staged_kv(t, kv);
	kv[1] = (es_journal_kv){"x.dev.abc", "1 2 3", 5};
	kv[2] = (es_journal_kv){"x.dev.6", "garbage", 7};
	kv[3] = (es_journal_kv){"x.dev.0", "1 2 3", 5};
	assert_int_equal(es_journal_append_kv(j, NULL, 0, NULL, kv, 4), ES_OK);
	devices_free(t);
	t = table(10);
	assert_int_equal(devices_load(t, j), ES_OK);
	devices_counts c;
	devices_counts_get(t, &c);
	assert_int_equal(c.devices, 1);
	dev *d = devices_find(t, 5);
	assert_non_null(d);
	assert_int_equal(d->boot, 3);
	assert_int_equal(d->last, 41);
	assert_int_equal(d->records, 2);
	assert_true(d->known && d->greeted);
	assert_int_equal(devices_record(t, 5, 41, &d), DEV_DUPLICATE);
	take(t, 5, 42);
	devices_free(t);
	es_journal_close(j);
	for (const char *const *s = (const char *const[]){"", "-wal", "-shm", NULL}; *s; s++) {
		snprintf(name, sizeof name, "%s%s", path, *s);
		unlink(name);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_device_starts_where_it_says),
		cmocka_unit_test(unknown_device),
		cmocka_unit_test(failed_batch_is_taken_again),
		cmocka_unit_test(sequence_wraps),
		cmocka_unit_test(hello_of_a_known_device),
		cmocka_unit_test(registration_once_per_batch),
		cmocka_unit_test(restarted_sequence_is_new_data),
		cmocka_unit_test(warm_reset_is_not_a_restart),
		cmocka_unit_test(implausible_hello_refused),
		cmocka_unit_test(insisting_hello_is_taken),
		cmocka_unit_test(out_of_step_records),
		cmocka_unit_test(table_full),
		cmocka_unit_test(grows_between_batches),
		cmocka_unit_test(seen_and_connections),
		cmocka_unit_test(loads_what_was_journaled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
