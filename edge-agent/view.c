/* view.c - a copy of the loop's state under one lock (view.h).
 *
 * Lock: `lock` guards `data`.
 */
#include "view.h"

#include <pthread.h>
#include <stdlib.h>

struct agent_view {
	pthread_mutex_t lock;
	agent_view_data data;
};

es_err agent_view_new(agent_view **out)
{
	if (!out)
		return ES_EINVAL;
	agent_view *v = calloc(1, sizeof *v);
	if (!v)
		return ES_ENOMEM;
	pthread_mutex_init(&v->lock, NULL);
	*out = v;
	return ES_OK;
}

void agent_view_free(agent_view *v)
{
	if (!v)
		return;
	pthread_mutex_destroy(&v->lock);
	free(v);
}

void agent_view_set(agent_view *v, const agent_view_data *d)
{
	pthread_mutex_lock(&v->lock);
	v->data = *d;
	pthread_mutex_unlock(&v->lock);
}

void agent_view_get(agent_view *v, agent_view_data *out)
{
	pthread_mutex_lock(&v->lock);
	*out = v->data;
	pthread_mutex_unlock(&v->lock);
}
