#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

int strata__mutex_init(strata__mutex *m)
{
    return pthread_mutex_init(m, NULL) == 0 ? 0 : -1;
}

int strata__cond_init(strata__cond *c)
{
    pthread_condattr_t attr;
    int rc;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

int strata__cond_wait_until(strata__cond *c, strata__mutex *m, int64_t deadline_ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ms / 1000);
    ts.tv_nsec = (long)((deadline_ms % 1000) * 1000000L);
    return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT ? 1 : 0;
}

int strata__thread_start(strata__thread *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg) == 0 ? 0 : -1;
}

uint64_t strata__now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t strata__now_mono_ms(void)
{
    return (int64_t)(strata__now_mono_ns() / 1000000ull);
}

int64_t strata__now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t strata__coarse_tick_ms = -1;

/* First call (finds the tick), or no coarse clock on this system (-2). */
int64_t strata__now_wall_coarse_slow(void)
{
    struct timespec res, ts;
    int64_t tick = __atomic_load_n(&strata__coarse_tick_ms, __ATOMIC_RELAXED);
    if (tick == -1) {
        if (clock_getres(CLOCK_REALTIME_COARSE, &res) != 0 || clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0)
            tick = -2;
        else
            tick = (int64_t)res.tv_sec * 1000 + (res.tv_nsec + 999999) / 1000000;
        __atomic_store_n(&strata__coarse_tick_ms, tick, __ATOMIC_RELAXED);
    }
    if (tick == -2)
        return strata__now_wall_ms();
    return strata__now_wall_coarse_ms();
}

/* ---- reader slots: a bitmap of the taken ones; a thread's is given back
 * by its pthread key's destructor at exit ---- */

STRATA__TLS unsigned int strata__this_reader_slot __attribute__((tls_model("initial-exec")));
static uint64_t readers_taken;      /* bit i: slot i has a live thread (atomic) */
static unsigned int readers_used;   /* highest slot ever taken + 1 (atomic) */
static pthread_key_t reader_key;
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;
static int reader_key_made;

static void (*reader_release_hook)(unsigned int slot); /* atomic */

void strata__reader_slot_on_release(void (*fn)(unsigned int slot))
{
    __atomic_store_n(&reader_release_hook, fn, __ATOMIC_RELEASE);
}

static void reader_slot_give_back(void *p)
{
    unsigned int slot = (unsigned int)(uintptr_t)p - 1;
    void (*hook)(unsigned int) = __atomic_load_n(&reader_release_hook, __ATOMIC_ACQUIRE);
    if (hook)
        hook(slot);
    __atomic_fetch_and(&readers_taken, ~((uint64_t)1 << slot), __ATOMIC_RELEASE);
    strata__this_reader_slot = 0;
}

/* The child has only the forking thread: every other slot is free there. */
static void reader_slots_after_fork(void)
{
    unsigned int s = strata__this_reader_slot;
    __atomic_store_n(&readers_taken, s ? (uint64_t)1 << (s - 1) : 0, __ATOMIC_RELAXED);
}

static void reader_slots_init(void)
{
    reader_key_made = pthread_key_create(&reader_key, reader_slot_give_back) == 0;
    pthread_atfork(NULL, NULL, reader_slots_after_fork);
}

/* A library unloaded (dlclose of a Lua module) must not leave threads a
 * destructor to call in unmapped code. */
__attribute__((destructor)) static void reader_slots_unload(void)
{
    if (reader_key_made)
        pthread_key_delete(reader_key);
}

unsigned int strata__reader_slot_take(void)
{
    uint64_t taken;
    unsigned int slot, used;
    pthread_once(&reader_once, reader_slots_init);
    if (!reader_key_made)
        return STRATA__READER_SLOTS;
    taken = __atomic_load_n(&readers_taken, __ATOMIC_RELAXED);
    do {
        if (~taken == 0)
            return STRATA__READER_SLOTS;
        slot = (unsigned int)__builtin_ctzll(~taken);
    } while (!__atomic_compare_exchange_n(&readers_taken, &taken, taken | (uint64_t)1 << slot, 0,
                                          __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
    if (pthread_setspecific(reader_key, (void *)(uintptr_t)(slot + 1)) != 0) {
        __atomic_fetch_and(&readers_taken, ~((uint64_t)1 << slot), __ATOMIC_RELEASE);
        return STRATA__READER_SLOTS;
    }
    used = __atomic_load_n(&readers_used, __ATOMIC_SEQ_CST);
    while (used < slot + 1 &&
           !__atomic_compare_exchange_n(&readers_used, &used, slot + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    strata__this_reader_slot = slot + 1;
    return slot;
}

unsigned int strata__reader_slots_used(void)
{
    /* seq_cst: a writer that raised its flag sees every slot a reader that
     * missed the flag has marked */
    return __atomic_load_n(&readers_used, __ATOMIC_SEQ_CST);
}

void strata__spin_pause(unsigned int round)
{
    if (round < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield(); /* the thread we wait for may be off its core */
    }
}

void strata__sleep_ms(int64_t ms)
{
    struct timespec ts;
    if (ms <= 0)
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms % 1000) * 1000000L);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static unsigned int fork_generation = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    __atomic_add_fetch(&fork_generation, 1, __ATOMIC_RELAXED);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

unsigned int strata__fork_generation(void)
{
    pthread_once(&atfork_once, register_atfork);
    return __atomic_load_n(&fork_generation, __ATOMIC_RELAXED);
}

static STRATA__TLS uint64_t rng_state[2];
static STRATA__TLS unsigned int rng_generation;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(void)
{
    uint64_t seed = strata__now_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&rng_generation;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        uint64_t r;
        if (read(fd, &r, sizeof r) == (ssize_t)sizeof r)
            seed ^= r;
        close(fd);
    }
    rng_state[0] = splitmix64(&seed);
    rng_state[1] = splitmix64(&seed);
    rng_generation = strata__fork_generation();
}

/* xorshift128+: fast, good enough for jitter, XFetch and lease tokens. */
uint64_t strata__random_u64(void)
{
    uint64_t s1, s0;
    if (rng_generation != strata__fork_generation() || (rng_state[0] | rng_state[1]) == 0)
        rng_seed();
    s1 = rng_state[0];
    s0 = rng_state[1];
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_state[1] + s0;
}

double strata__random_unit(void)
{
    /* 53 random bits mapped onto (0, 1]. */
    return (double)((strata__random_u64() >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static uint64_t process_seed;
static unsigned int process_seed_generation;
static pthread_mutex_t process_seed_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t strata__process_seed(void)
{
    unsigned int gen = strata__fork_generation();
    uint64_t seed;
    if (__atomic_load_n(&process_seed_generation, __ATOMIC_ACQUIRE) == gen)
        return __atomic_load_n(&process_seed, __ATOMIC_RELAXED);
    pthread_mutex_lock(&process_seed_lock);
    if (process_seed_generation != gen) {
        __atomic_store_n(&process_seed, strata__random_u64(), __ATOMIC_RELAXED);
        __atomic_store_n(&process_seed_generation, gen, __ATOMIC_RELEASE);
    }
    seed = process_seed;
    pthread_mutex_unlock(&process_seed_lock);
    return seed;
}
