/* pool.c — the context's thread pool (pool.h). */
#include "pool.h"
#include "util.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Whether a poll loop started at t0 has polled for DK_POOL_SPIN_NS (the clock read every 64th turn i) */
static bool dk_pool_spun(int i, double t0) {
    return (i & 63) == 63 && (dk_time_now_s() - t0) * 1e9 > DK_POOL_SPIN_NS;
}

/* Takes and runs tasks of job generation g until none is left (or a newer job began). */
static void dk_pool_work(dk_pool *p, uint32_t g, dk_task_fn fn, void *arg, int n_tasks, int tid) {
    for (;;) {
        uint64_t t = atomic_load(&p->ticket);
        if ((uint32_t)(t >> 32) != g || (uint32_t)t >= (uint32_t)n_tasks) return;
        if (!atomic_compare_exchange_weak(&p->ticket, &t, t + 1)) continue;
        fn(arg, (int)(uint32_t)t, tid);
        if (atomic_fetch_add(&p->finished, 1) + 1 == n_tasks) { /* the last task: wake a waiting caller */
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *dk_pool_main(void *argp) {
    dk_pool_worker_arg *a = argp;
    dk_pool *p = a->p;
    int tid = a->tid;
    unsigned long seen = 0;
    for (;;) {
        /* the next job usually follows within microseconds in decode: poll briefly first */
        double t0 = dk_time_now_s();
        for (int i = 0; atomic_load(&p->gen) == seen && !dk_pool_spun(i, t0); i++) {}
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->gen) == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = atomic_load(&p->gen);
        dk_task_fn fn = p->fn;
        void *arg = p->arg;
        int n_tasks = p->n_tasks;
        pthread_mutex_unlock(&p->mu);
        dk_pool_work(p, (uint32_t)seen, fn, arg, n_tasks, tid);
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
    if (!p->th || !wa) {
        free(p->th);
        free(wa);
        p->th = NULL;
        p->wa = NULL;
        return;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->finished, 0);
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
    unsigned long g = atomic_load(&p->gen) + 1;
    atomic_store(&p->finished, 0);
    atomic_store(&p->ticket, (uint64_t)(uint32_t)g << 32);
    atomic_store(&p->gen, g);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    dk_pool_work(p, (uint32_t)g, fn, arg, n_tasks, 0);
    if (atomic_load(&p->finished) == n_tasks) return; /* nothing left in progress */
    /* a worker is finishing its last task: in decode that is microseconds away, less than a sleep
     * and a wake-up through the kernel cost; poll for as long as the workers do before sleeping */
    double t0 = dk_time_now_s();
    for (int i = 0; atomic_load(&p->finished) < n_tasks && !dk_pool_spun(i, t0); i++) {}
    if (atomic_load(&p->finished) == n_tasks) return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->finished) < n_tasks) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int dk_pool_n_tasks(const dk_pool *p, size_t n, size_t min_units) {
    if (p->n <= 1 || n < 2 * min_units) return 1;
    size_t t = n / min_units, cap = (size_t)p->n * 4;
    return (int)(t < cap ? t : cap);
}
