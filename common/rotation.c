/* rotation.c - round robin over a cluster's URLs; see rotation.h. */
#include "rotation.h"

void es_rotation_init(es_rotation *r, size_t n)
{
	*r = (es_rotation){.n = n ? n : 1};
}

size_t es_rotation_current(const es_rotation *r)
{
	return r->cur;
}

bool es_rotation_failed(es_rotation *r)
{
	r->cur = (r->cur + 1) % r->n;
	r->failed++;
	if (r->failed < r->n)
		return false;
	/* A round is over: count the next one from here. */
	r->failed = 0;
	return true;
}

bool es_rotation_connected(es_rotation *r)
{
	bool moved = r->ever_up && r->cur != r->last_up;
	if (moved)
		r->failovers++;
	r->ever_up = true;
	r->last_up = r->cur;
	r->failed = 0;
	return moved;
}
