/* pool.c — the context's thread pool (pool.h). */
#include "pool.h"
#include <stdlib.h>
#include <string.h>

static void dk_pool_drain(dk_pool *p, int tid) {
    int t;
    while ((t = atomic_fetch_add(&p->next, 1)) < p->n_tasks) p->fn(p->arg, t, tid);
}

static void *dk_pool_main(void *argp) {
    dk_pool_worker_arg *a = argp;
    dk_pool *p = a->p;
    int tid = a->tid;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) { pthread_mutex_unlock(&p->mu); return NULL; }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        dk_pool_drain(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

void dk_pool_free(dk_pool *p) {
    if (p->n > 1) {
        pthread_mutex_lock(&p->mu);
        p->quit = true;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n - 1; i++) pthread_join(p->th[i], NULL);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
    free(p->th);
    free(p->wa);
    memset(p, 0, sizeof *p);
    p->n = 1;
}

/* Starts n-1 workers; on any failure the pool has fewer threads (at least the caller). */
void dk_pool_init(dk_pool *p, int n) {
    memset(p, 0, sizeof *p);
    p->n = 1;
    if (n <= 1) return;
    p->th = malloc((size_t)(n - 1) * sizeof *p->th);
    dk_pool_worker_arg *wa = p->wa = malloc((size_t)(n - 1) * sizeof *wa);
    if (!p->th || !wa) { free(p->th); free(wa); p->th = NULL; p->wa = NULL; return; }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    p->n = 1;
    for (int i = 0; i < n - 1; i++) {
        wa[i] = (dk_pool_worker_arg){p, i + 1};
        if (pthread_create(&p->th[i], NULL, dk_pool_main, &wa[i]) != 0) break;
        p->n++;
    }
    if (p->n == 1) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->go);
        pthread_cond_destroy(&p->done);
    }
}

void dk_pool_run(dk_pool *p, int n_tasks, dk_task_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    if (p->n <= 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    dk_pool_drain(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int dk_pool_n_tasks(const dk_pool *p, size_t n, size_t min_units) {
    if (p->n <= 1 || n < 2 * min_units) return 1;
    size_t t = n / min_units, cap = (size_t)p->n * 4;
    return (int)(t < cap ? t : cap);
}
