/* bridge_nodes_test.c - the bridge's table of source nodes
 * (cloud-bridge/nodes.c): records made zeroed, found again by name across
 * growth, named, visited once each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "nodes.h"

#define COUNT 1000 /* enough to grow the table several times */

struct rec {
	uint64_t value;
	size_t visits;
};

static void visit(void *ctx, void *record)
{
	struct rec *r = record;
	r->visits++;
	(*(size_t *)ctx)++;
}

static void dropped(void *ctx, void *record)
{
	(void)record;
	(*(size_t *)ctx)++;
}

static void keeps_records_by_name(void **state)
{
	(void)state;
	bridge_nodes *t;
	char name[BRIDGE_NODE_MAX];
	assert_int_equal(bridge_nodes_new(sizeof(struct rec), &t), ES_OK);
	for (uint64_t i = 0; i < COUNT; i++) {
		snprintf(name, sizeof name, "site-%llu/gw-%llu", (unsigned long long)(i % 7),
			 (unsigned long long)i);
		assert_null(bridge_nodes_find(t, name));
		struct rec *r = bridge_nodes_get(t, name);
		assert_non_null(r);
		assert_int_equal(r->value, 0); /* zeroed */
		r->value = i + 1;
		assert_ptr_equal(bridge_nodes_get(t, name), r);
	}
	for (uint64_t i = 0; i < COUNT; i++) {
		snprintf(name, sizeof name, "site-%llu/gw-%llu", (unsigned long long)(i % 7),
			 (unsigned long long)i);
		struct rec *r = bridge_nodes_find(t, name);
		assert_non_null(r);
		assert_int_equal(r->value, i + 1);
		assert_string_equal(bridge_nodes_name(r), name);
	}
	size_t n = 0;
	bridge_nodes_each(t, visit, &n);
	assert_int_equal(n, COUNT);
	struct rec *one = bridge_nodes_find(t, "site-0/gw-0");
	assert_int_equal(one->visits, 1);

	char longest[BRIDGE_NODE_MAX + 1];
	memset(longest, 'a', BRIDGE_NODE_MAX);
	longest[BRIDGE_NODE_MAX] = '\0'; /* one character too long */
	assert_null(bridge_nodes_get(t, longest));
	longest[BRIDGE_NODE_MAX - 1] = '\0'; /* the longest there is */
	assert_non_null(bridge_nodes_get(t, longest));
	size_t drops = 0;
	bridge_nodes_free(t, dropped, &drops);
	assert_int_equal(drops, COUNT + 1);
	bridge_nodes_free(NULL, NULL, NULL);
}

/* A node's topics from its name "site/node"; a name that is not one is
 * refused, not split somewhere. */
static void builds_a_nodes_topics(void **state)
{
	(void)state;
	char buf[ES_TOPIC_MAX];
	es_batch_coding c = {.codec = ES_BATCH_IDENTITY};
	assert_int_equal(bridge_node_topic(buf, sizeof buf, "es", "site-1/gw-7", "cmd", "resend"),
			 ES_OK);
	assert_string_equal(buf, "es/site-1/gw-7/cmd/resend");
	assert_int_equal(bridge_node_topic(buf, sizeof buf, "es", "site-1/gw-7", "status", NULL),
			 ES_OK);
	assert_string_equal(buf, "es/site-1/gw-7/status");
	assert_int_equal(bridge_node_batch_topic(buf, sizeof buf, "es", "site-1/gw-7", &c), ES_OK);
	assert_string_equal(buf, "es/site-1/gw-7/batch/ce=identity");
	assert_int_equal(bridge_node_topic(buf, sizeof buf, "es", "gw-7", "status", NULL),
			 ES_EINVAL);
	assert_int_equal(bridge_node_batch_topic(buf, sizeof buf, "es", NULL, &c), ES_EINVAL);
	char longsite[ES_TOPIC_ID_MAX + 8];
	memset(longsite, 's', ES_TOPIC_ID_MAX + 1);
	strcpy(longsite + ES_TOPIC_ID_MAX + 1, "/gw");
	assert_int_equal(bridge_node_topic(buf, sizeof buf, "es", longsite, "status", NULL),
			 ES_ETOOBIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keeps_records_by_name),
		cmocka_unit_test(builds_a_nodes_topics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
