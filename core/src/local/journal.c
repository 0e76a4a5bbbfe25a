/* The write-behind journal file: append, replay, compact (see journal.h). */
#define _GNU_SOURCE
#include "journal.h"
#include "error.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define J_MAGIC "STRJ\001\0\0\0" /* magic, format version 1, reserved */
#define J_HEADER 8
#define J_PUT 1
#define J_ACK 2
#define J_DEAD 3
#define J_MAX_BODY ((size_t)1 << 31)

struct strata__journal {
    int fd;
    char path[1100];
    int fsync_policy;
    int64_t interval_ms;
    int64_t last_sync_ms;   /* monotonic */
    uint64_t size;          /* bytes up to the end of the last whole record */
    int torn;               /* a failed append could not be cut back yet */
    strata__journal_limits lim;
    uint64_t compact_at;    /* compact when size passes this */
    int64_t dead_count;     /* records in the .dead file; -1 = not counted yet */
    int64_t dead_oldest_ms; /* wall ms of its oldest record (0 = none) */
    strata__journal_counters counters;
    char report[2600];       /* what replay skipped, "" = nothing */
};

/* ---- encoding ---------------------------------------------------------- */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Frames body (whose first 8 bytes are reserved for length and CRC) in place. */
static void frame(unsigned char *rec, size_t bodylen)
{
    put_u32(rec, (uint32_t)bodylen);
    put_u32(rec + 4, crc32_of(rec + 8, bodylen));
}

static int write_all(int fd, const unsigned char *p, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return strata__error(STRATA_EBACKEND, "journal %s: write failed: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_fd(strata__journal *j, int force)
{
    int64_t now;
    if (j->fsync_policy == STRATA_WB_FSYNC_NONE && !force)
        return 0;
    now = strata__now_mono_ms();
    if (!force && j->fsync_policy == STRATA_WB_FSYNC_INTERVAL && now - j->last_sync_ms < j->interval_ms)
        return 0;
    if (fdatasync(j->fd) != 0)
        return strata__error(STRATA_EBACKEND, "journal %s: fdatasync failed: %s", j->path, strerror(errno));
    j->last_sync_ms = now;
    return 0;
}

/* One framed record: a single write(), so a crash leaves at most a torn tail
 * that replay detects by its length or CRC. */
static int append_record(strata__journal *j, int fd, unsigned char *rec, size_t bodylen)
{
    frame(rec, bodylen);
    return write_all(fd, rec, 8 + bodylen, j->path);
}

/* Drops whatever a failed append left after the last whole record. Until
 * that succeeds nothing more is appended: a write after a torn record would
 * be acknowledged and then lost at replay, which stops (or resyncs) there. */
static int cut_back(strata__journal *j)
{
    if (ftruncate(j->fd, (off_t)j->size) != 0) {
        j->torn = 1;
        return strata__error(STRATA_EBACKEND, "journal %s: a failed append cannot be cut back to %llu bytes "
                             "(%s); no write is accepted until it can", j->path, (unsigned long long)j->size,
                             strerror(errno));
    }
    j->torn = 0;
    return 0;
}

/* Appends one record to the journal itself: whole, or not at all. */
static int journal_append(strata__journal *j, unsigned char *rec, size_t bodylen, int sync)
{
    char why[512];
    int rc;
    if (j->torn && (rc = cut_back(j)) < 0)
        return rc;
    rc = append_record(j, j->fd, rec, bodylen);
    if (rc == 0 && sync)
        rc = sync_fd(j, 0); /* an unsynced record is not acknowledged: cut it too */
    if (rc < 0) {
        snprintf(why, sizeof why, "%s", strata_error_last());
        if (cut_back(j) < 0)
            return rc;
        return strata__error(rc, "%s", why);
    }
    j->size += 8 + bodylen;
    return 0;
}

/* ---- replay ------------------------------------------------------------ */

static int read_file(int fd, const char *path, unsigned char **data, size_t *len)
{
    struct stat st;
    size_t off = 0;
    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0)
        return strata__error(STRATA_EOPTION, "option wb_journal: stat %s: %s", path, strerror(errno));
    if (st.st_size == 0)
        return 0;
    if ((*data = malloc((size_t)st.st_size)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory replaying journal %s", path);
    while (off < (size_t)st.st_size) {
        ssize_t r = pread(fd, *data + off, (size_t)st.st_size - off, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    *len = off;
    return 0;
}

/* Finds the live put with this sequence (puts are in increasing order). */
static strata__wb_record *find_seq(strata__wb_record *recs, size_t n, uint64_t seq)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (recs[mid].id.seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && recs[lo].id.seq == seq ? &recs[lo] : NULL;
}

/* A damaged stretch of the file, skipped at replay. */
typedef struct damage {
    size_t off, len;
} damage;

typedef struct replay_out {
    strata__wb_record *recs;
    size_t n, cap, nacked;
    damage *bad;
    size_t nbad, capbad;
} replay_out;

/* The body of a whole, CRC-checked record at off whose content parses
 * (a PUT with a sane key, an ACK whose ids fit), or NULL. */
static const unsigned char *record_at(const unsigned char *data, size_t len, size_t off, uint32_t *bodylen)
{
    const unsigned char *body = data + off + 8;
    uint32_t n;
    if (off + 8 > len)
        return NULL;
    n = get_u32(data + off);
    if (n < 1 || n > len - off - 8)
        return NULL;
    if (body[0] == J_PUT) {
        if (n < 21 || get_u32(body + 17) == 0 || 21 + (size_t)get_u32(body + 17) > n)
            return NULL;
    } else if (body[0] == J_ACK) {
        if (n < 5 || 5 + (size_t)get_u32(body + 1) * 8 > n)
            return NULL;
    } else {
        return NULL;
    }
    if (crc32_of(body, n) != get_u32(data + off + 4))
        return NULL;
    *bodylen = n;
    return body;
}

/* Where the next whole record after a damaged one at off starts: skipping
 * by the damaged record's own length when a whole record follows there, else
 * the first offset where one does; len when none does (a torn tail). */
static size_t resync(const unsigned char *data, size_t len, size_t off)
{
    uint32_t bodylen, n = off + 8 <= len ? get_u32(data + off) : 0;
    size_t p;
    if (n >= 1 && n <= len - off - 8 && record_at(data, len, off + 8 + n, &bodylen) != NULL)
        return off + 8 + n;
    for (p = off + 1; p + 8 <= len; p++)
        if (record_at(data, len, p, &bodylen) != NULL)
            return p;
    return len;
}

/* Sequences start at 1 and grow by one per write: 2^62 is out of reach. */
#define J_MAX_SEQ ((uint64_t)1 << 62)

static int add_put(replay_out *o, const unsigned char *body, uint32_t bodylen, uint64_t *next_seq,
                   const char *path)
{
    uint32_t keylen = get_u32(body + 17);
    strata__wb_record *r;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        strata__wb_record *p = realloc(o->recs, nc * sizeof *p);
        if (p == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory replaying journal %s", path);
        memset(p + o->cap, 0, (nc - o->cap) * sizeof *p);
        o->recs = p;
        o->cap = nc;
    }
    r = &o->recs[o->n++];
    r->id.ms = 0;
    r->id.seq = get_u64(body + 1);
    r->enqueued_ms = (int64_t)get_u64(body + 9);
    if (r->id.seq >= *next_seq)
        *next_seq = r->id.seq + 1;
    if (strata__bytes_set(&r->key, body + 21, keylen) < 0 ||
        strata__bytes_set(&r->val, body + 21 + keylen, bodylen - 21 - keylen) < 0)
        return STRATA_ENOMEM;
    return 0;
}

static int add_damage(replay_out *o, size_t off, size_t len, const char *path)
{
    if (o->nbad == o->capbad) {
        size_t nc = o->capbad ? o->capbad * 2 : 8;
        damage *p = realloc(o->bad, nc * sizeof *p);
        if (p == NULL)
            return strata__error(STRATA_ENOMEM, "out of memory replaying journal %s", path);
        o->bad = p;
        o->capbad = nc;
    }
    o->bad[o->nbad].off = off;
    o->bad[o->nbad].len = len;
    o->nbad++;
    return 0;
}

/* Parses every record. A damaged one (flipped bits, a torn write) costs only
 * itself: it is noted in o->bad and replay goes on at the next whole record.
 * Acked puts are marked by id.ms = 1 and removed at the end. */
static int replay(const unsigned char *data, size_t len, replay_out *o, uint64_t *next_seq, const char *path)
{
    size_t off = J_HEADER, i, w;
    int rc = 0;

    while (off < len && rc == 0) {
        uint32_t bodylen;
        const unsigned char *body = record_at(data, len, off, &bodylen);
        if (body == NULL) {
            size_t next = resync(data, len, off);
            rc = add_damage(o, off, next - off, path);
            off = next;
            continue;
        }
        if (body[0] == J_PUT && get_u64(body + 1) >= J_MAX_SEQ) {
            /* no writer of ours gets there (one per write from 1): damage, and
             * taken as a sequence it would wrap the next one to 0 */
            rc = add_damage(o, off, 8 + bodylen, path);
        } else if (body[0] == J_PUT) {
            rc = add_put(o, body, bodylen, next_seq, path);
        } else {
            uint32_t count = get_u32(body + 1);
            for (i = 0; i < count; i++) {
                strata__wb_record *r = find_seq(o->recs, o->n, get_u64(body + 5 + i * 8));
                if (r && !r->id.ms) {
                    r->id.ms = 1; /* acked */
                    o->nacked++;
                }
            }
        }
        off += 8 + bodylen;
    }
    if (rc != 0)
        return rc;
    /* keep the live ones, in order */
    for (i = 0, w = 0; i < o->n; i++) {
        if (o->recs[i].id.ms) {
            strata__bytes_free(&o->recs[i].key);
            strata__bytes_free(&o->recs[i].val);
            continue;
        }
        if (w != i) {
            o->recs[w] = o->recs[i];
            memset(&o->recs[i], 0, sizeof o->recs[i]);
        }
        w++;
    }
    o->n = w;
    return 0;
}

/* Appends the damaged bytes to "<path>.corrupt" (before the journal is
 * rewritten without them) and says what was skipped. */
static int keep_damage(strata__journal *j, const unsigned char *data, const replay_out *o)
{
    char path[1200];
    size_t i, bytes = 0;
    int fd, rc = 0;
    snprintf(path, sizeof path, "%s.corrupt", j->path);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
        return strata__error(STRATA_EBACKEND, "journal %s: %zu damaged record(s) found but %s cannot be created: "
                             "%s (the journal is left as it is)", j->path, o->nbad, path, strerror(errno));
    for (i = 0; i < o->nbad && rc == 0; i++) {
        rc = write_all(fd, data + o->bad[i].off, o->bad[i].len, path);
        bytes += o->bad[i].len;
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: fdatasync %s: %s", j->path, path, strerror(errno));
    close(fd);
    if (rc < 0)
        return rc;
    j->counters.skipped_records += o->nbad;
    j->counters.skipped_bytes += bytes;
    snprintf(j->report, sizeof j->report, "journal %s: skipped %zu damaged record(s) (%zu bytes, first at "
             "offset %zu) during replay and kept them in %s; the intact records were replayed",
             j->path, o->nbad, bytes, o->bad[0].off, path);
    return 0;
}

/* A put record's bytes (framing included) in a fresh buffer. */
static unsigned char *put_record(uint64_t seq, const char *key, size_t keylen, const char *val,
                                 size_t vallen, int64_t enqueued_ms, size_t *bodylen)
{
    unsigned char *rec;
    *bodylen = 21 + keylen + vallen;
    if (*bodylen > J_MAX_BODY || (rec = malloc(8 + *bodylen)) == NULL)
        return NULL;
    rec[8] = J_PUT;
    put_u64(rec + 9, seq);
    put_u64(rec + 17, (uint64_t)enqueued_ms);
    put_u32(rec + 25, (uint32_t)keylen);
    memcpy(rec + 29, key, keylen);
    if (vallen)
        memcpy(rec + 29 + keylen, val, vallen);
    return rec;
}

/* Rewrites the journal with only the live records (tmp file, fsync, rename). */
static int compact(strata__journal *j, const strata__wb_record *recs, size_t n)
{
    char tmp[1200];
    int fd, rc = 0;
    size_t i;
    uint64_t size = J_HEADER;
    snprintf(tmp, sizeof tmp, "%s.tmp", j->path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return strata__error(STRATA_EBACKEND, "journal %s: cannot create %s: %s", j->path, tmp, strerror(errno));
    rc = write_all(fd, (const unsigned char *)J_MAGIC, J_HEADER, tmp);
    for (i = 0; i < n && rc == 0; i++) {
        size_t bodylen;
        unsigned char *rec = put_record(recs[i].id.seq, recs[i].key.data, recs[i].key.len,
                                        recs[i].val.data, recs[i].val.len, recs[i].enqueued_ms, &bodylen);
        if (rec == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory compacting journal %s", j->path);
            break;
        }
        rc = append_record(j, fd, rec, bodylen);
        size += 8 + bodylen;
        free(rec);
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: fdatasync: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, j->path) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: rename: %s", j->path, strerror(errno));
    if (rc != 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    /* the lock moves to the new file: it is the journal now */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return strata__error(STRATA_EBUSY, "journal %s: cannot lock the compacted file", j->path);
    }
    close(j->fd);
    j->fd = fd;
    j->size = size;
    j->torn = 0;
    j->compact_at = j->lim.compact_bytes > 2 * size ? j->lim.compact_bytes : 2 * size;
    if (fcntl(fd, F_SETFL, O_APPEND) != 0)
        return strata__error(STRATA_EBACKEND, "journal %s: fcntl: %s", j->path, strerror(errno));
    return 0;
}

int strata__journal_open(strata__journal **out, const char *path, int fsync_policy, int64_t interval_ms,
                         strata__wb_record **recs, size_t *n, uint64_t *next_seq)
{
    strata__journal *j;
    unsigned char *data = NULL;
    size_t len = 0;
    replay_out ro;
    int rc;

    *out = NULL;
    *recs = NULL;
    *n = 0;
    *next_seq = 1;
    memset(&ro, 0, sizeof ro);
    if (path == NULL || *path == '\0' || strlen(path) >= sizeof j->path)
        return strata__error(STRATA_EOPTION, "option wb_journal: path must be 1-1023 bytes");
    if ((j = calloc(1, sizeof *j)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening journal");
    snprintf(j->path, sizeof j->path, "%s", path);
    j->fsync_policy = fsync_policy;
    j->interval_ms = interval_ms;
    j->lim.compact_bytes = STRATA__JOURNAL_COMPACT_DEFAULT;
    j->dead_count = -1;
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        rc = strata__error(STRATA_EOPTION, "option wb_journal: cannot open \"%s\": %s", path, strerror(errno));
        free(j);
        return rc;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = strata__error(STRATA_EBUSY, "option wb_journal: \"%s\" is in use by another cache or process",
                           path);
        goto fail;
    }
    if ((rc = read_file(j->fd, path, &data, &len)) < 0)
        goto fail;
    if (len >= J_HEADER && memcmp(data, J_MAGIC, 4) != 0) {
        rc = strata__error(STRATA_EOPTION, "option wb_journal: \"%s\" is not a stratacache journal", path);
        goto fail;
    }
    if (len >= J_HEADER && data[4] != 1) {
        rc = strata__error(STRATA_EVERSION, "journal \"%s\" has format version %d (this library knows 1)",
                           path, data[4]);
        goto fail;
    }
    if (len >= J_HEADER && (rc = replay(data, len, &ro, next_seq, path)) < 0)
        goto fail;
    /* the damaged bytes are safe elsewhere before the journal is rewritten */
    if (ro.nbad > 0 && (rc = keep_damage(j, data, &ro)) < 0)
        goto fail;
    free(data);
    data = NULL;
    if (len < J_HEADER || ro.n == 0) {
        /* empty, new, or all flushed: start over from the header */
        if (ftruncate(j->fd, 0) != 0 || write_all(j->fd, (const unsigned char *)J_MAGIC, J_HEADER, path) != 0 ||
            fdatasync(j->fd) != 0) {
            rc = strata__error(STRATA_EOPTION, "option wb_journal: cannot write \"%s\": %s", path, strerror(errno));
            goto fail;
        }
        j->size = J_HEADER;
    } else if (ro.nacked > 0 || ro.nbad > 0) {
        if ((rc = compact(j, ro.recs, ro.n)) < 0)
            goto fail;
    } else {
        j->size = len;
    }
    j->compact_at = j->lim.compact_bytes > 2 * j->size ? j->lim.compact_bytes : 2 * j->size;
    j->last_sync_ms = strata__now_mono_ms();
    free(ro.bad);
    *recs = ro.recs;
    *n = ro.n;
    *out = j;
    return 0;
fail:
    free(data);
    free(ro.bad);
    strata__wb_records_free(ro.recs, ro.cap);
    close(j->fd);
    free(j);
    return rc;
}

void strata__journal_close(strata__journal *j)
{
    if (j == NULL)
        return;
    if (j->fsync_policy != STRATA_WB_FSYNC_NONE)
        fdatasync(j->fd);
    close(j->fd);
    free(j);
}

int strata__journal_put(strata__journal *j, uint64_t seq, const char *key, size_t keylen, const char *val,
                        size_t vallen, int64_t enqueued_ms)
{
    size_t bodylen;
    unsigned char *rec = put_record(seq, key, keylen, val, vallen, enqueued_ms, &bodylen);
    int rc;
    if (rec == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory journaling a %zu-byte value", vallen);
    rc = journal_append(j, rec, bodylen, 1);
    free(rec);
    return rc;
}

int strata__journal_ack(strata__journal *j, size_t n, const strata__wb_id *ids)
{
    size_t bodylen = 5 + n * 8, i;
    unsigned char *rec;
    int rc;
    if (n == 0)
        return 0;
    if ((rec = malloc(8 + bodylen)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory journaling %zu acks", n);
    rec[8] = J_ACK;
    put_u32(rec + 9, (uint32_t)n);
    for (i = 0; i < n; i++)
        put_u64(rec + 13 + i * 8, ids[i].seq);
    rc = journal_append(j, rec, bodylen, 0);
    free(rec);
    return rc; /* an ack lost to a crash means one more delivery, never a lost write */
}

/* ---- dead letters ------------------------------------------------------ */

/* A whole dead-letter record at off: its length and given-up time. */
static int dead_at(const unsigned char *data, size_t len, size_t off, uint32_t *bodylen, int64_t *ms)
{
    uint32_t n;
    if (off + 8 > len)
        return 0;
    n = get_u32(data + off);
    if (n < 9 || n > len - off - 8 || data[off + 8] != J_DEAD || crc32_of(data + off + 8, n) != get_u32(data + off + 4))
        return 0;
    *bodylen = n;
    *ms = (int64_t)get_u64(data + off + 9);
    return 1;
}

/* Counts the dead letters (and the oldest one's time) and rewrites the file
 * without those past wb_dead_max (oldest first) or older than
 * wb_dead_max_age_ms. Bytes that do not parse are kept as they are. */
static int trim_dead(strata__journal *j, int64_t now_ms)
{
    char path[1200], tmp[1210];
    unsigned char *data = NULL;
    size_t len = 0, off, first_bad, count = 0, drop = 0, i;
    uint32_t bodylen;
    int64_t ms, oldest = 0;
    int fd, out, rc;
    snprintf(path, sizeof path, "%s.dead", j->path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        j->dead_count = 0;
        j->dead_oldest_ms = 0;
        return 0;
    }
    rc = read_file(fd, path, &data, &len);
    close(fd);
    if (rc < 0)
        return rc;
    for (off = J_HEADER; dead_at(data, len, off, &bodylen, &ms); off += 8 + bodylen)
        if (count++ == 0)
            oldest = ms;
    first_bad = off < len ? off : len;
    /* which to drop: the oldest beyond the count limit, then any too old */
    for (off = J_HEADER, i = 0; off < first_bad; off += 8 + bodylen, i++) {
        dead_at(data, len, off, &bodylen, &ms);
        if ((j->lim.dead_max && count - i > j->lim.dead_max) ||
            (j->lim.dead_max_age_ms && now_ms - ms > j->lim.dead_max_age_ms))
            drop++;
        else
            break; /* records are in time order: the rest stay */
    }
    if (drop == 0) {
        free(data);
        j->dead_count = (int64_t)count;
        j->dead_oldest_ms = count ? oldest : 0;
        return 0;
    }
    /* off is the first record kept */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        free(data);
        return strata__error(STRATA_EBACKEND, "journal %s: cannot create %s: %s", j->path, tmp, strerror(errno));
    }
    rc = write_all(out, data, J_HEADER, tmp);
    if (rc == 0 && len > off)
        rc = write_all(out, data + off, len - off, tmp);
    if (rc == 0 && j->fsync_policy != STRATA_WB_FSYNC_NONE && fdatasync(out) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: fdatasync: %s", tmp, strerror(errno));
    close(out);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: rename %s: %s", j->path, tmp, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        free(data);
        return rc;
    }
    j->counters.dead_trimmed += drop;
    j->dead_count = (int64_t)(count - drop);
    j->dead_oldest_ms = off < first_bad && dead_at(data, len, off, &bodylen, &ms) ? ms : 0;
    free(data);
    return 0;
}

static int dead_over_limits(const strata__journal *j, int64_t now_ms)
{
    return (j->lim.dead_max && (uint64_t)j->dead_count > j->lim.dead_max) ||
           (j->lim.dead_max_age_ms && j->dead_oldest_ms && now_ms - j->dead_oldest_ms > j->lim.dead_max_age_ms);
}

int strata__journal_dead(strata__journal *j, const char *key, size_t keylen, const char *val, size_t vallen,
                         unsigned int attempts, const char *message, size_t n, const strata__wb_id *ids)
{
    char path[1200];
    size_t msglen = message ? strlen(message) : 0, bodylen = 1 + 8 + 4 + 4 + keylen + 4 + msglen + vallen;
    unsigned char *rec;
    struct stat st;
    int64_t now = strata__now_wall_ms();
    int fd, rc;
    snprintf(path, sizeof path, "%s.dead", j->path);
    if ((rec = malloc(8 + bodylen)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory writing a dead letter");
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        free(rec);
        return strata__error(STRATA_EBACKEND, "journal %s: cannot open %s: %s", j->path, path, strerror(errno));
    }
    rec[8] = J_DEAD;
    put_u64(rec + 9, (uint64_t)now);
    put_u32(rec + 17, attempts);
    put_u32(rec + 21, (uint32_t)keylen);
    memcpy(rec + 25, key, keylen);
    put_u32(rec + 25 + keylen, (uint32_t)msglen);
    if (msglen)
        memcpy(rec + 29 + keylen, message, msglen);
    if (vallen)
        memcpy(rec + 29 + keylen + msglen, val, vallen);
    if (fstat(fd, &st) != 0) {
        rc = strata__error(STRATA_EBACKEND, "journal %s: stat %s: %s", j->path, path, strerror(errno));
        free(rec);
        close(fd);
        return rc;
    }
    rc = 0;
    if (st.st_size == 0)
        rc = write_all(fd, (const unsigned char *)J_MAGIC, J_HEADER, path);
    if (rc == 0)
        rc = append_record(j, fd, rec, bodylen);
    if (rc == 0 && j->fsync_policy != STRATA_WB_FSYNC_NONE && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: fdatasync: %s", path, strerror(errno));
    if (rc < 0 && ftruncate(fd, st.st_size) != 0)
        j->dead_count = -1; /* a torn dead letter stays; the scan keeps bytes it cannot parse */
    free(rec);
    close(fd);
    if (rc < 0)
        return rc;
    if (j->dead_count >= 0) {
        if (j->dead_count++ == 0)
            j->dead_oldest_ms = now;
    }
    if ((j->lim.dead_max || j->lim.dead_max_age_ms) &&
        (j->dead_count < 0 || dead_over_limits(j, now)) && (rc = trim_dead(j, now)) < 0)
        return rc;
    return strata__journal_ack(j, n, ids);
}

int strata__journal_truncate(strata__journal *j)
{
    if (ftruncate(j->fd, J_HEADER) != 0)
        return strata__error(STRATA_EBACKEND, "journal %s: ftruncate: %s", j->path, strerror(errno));
    j->size = J_HEADER;
    j->torn = 0;
    return 0;
}

/* ---- housekeeping ------------------------------------------------------ */

int strata__journal_set_limits(strata__journal *j, const strata__journal_limits *lim)
{
    j->lim = *lim;
    if (j->lim.compact_bytes == 0)
        j->lim.compact_bytes = STRATA__JOURNAL_COMPACT_DEFAULT;
    j->compact_at = j->lim.compact_bytes > 2 * j->size ? j->lim.compact_bytes : 2 * j->size;
    if (lim->dead_max || lim->dead_max_age_ms)
        return trim_dead(j, strata__now_wall_ms());
    return 0;
}

int strata__journal_wants_compaction(const strata__journal *j)
{
    return j->size > j->compact_at;
}

int strata__journal_compact(strata__journal *j, const strata__wb_record *recs, size_t n)
{
    int rc = compact(j, recs, n);
    if (rc == 0)
        j->counters.compactions++;
    return rc;
}

void strata__journal_get_counters(const strata__journal *j, strata__journal_counters *out)
{
    *out = j->counters;
}

const char *strata__journal_report(const strata__journal *j)
{
    return j->report;
}

/* ---- dead letters, for the operator tools (engine/wb_dead.c) ------------ */

int strata__journal_dead_read(strata__journal *j, strata__dead_letter **out, size_t *nout)
{
    char path[1200];
    unsigned char *data = NULL;
    size_t len = 0, off = J_HEADER, n = 0, cap = 0;
    strata__dead_letter *d = NULL;
    int fd, rc = 0;

    *out = NULL;
    *nout = 0;
    snprintf(path, sizeof path, "%s.dead", j->path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : strata__error(STRATA_EBACKEND, "dead letters %s: %s", path, strerror(errno));
    rc = read_file(fd, path, &data, &len);
    close(fd);
    if (rc < 0)
        return rc;
    if (len >= J_HEADER && memcmp(data, J_MAGIC, 4) != 0) {
        free(data);
        return strata__error(STRATA_EBACKEND, "dead letters %s: not a stratacache dead-letter file", path);
    }
    while (rc == 0 && off + 8 <= len) {
        uint32_t bodylen = get_u32(data + off), keylen, msglen;
        const unsigned char *body = data + off + 8;
        if (bodylen < 21 || off + 8 + bodylen > len || crc32_of(body, bodylen) != get_u32(data + off + 4) ||
            body[0] != J_DEAD)
            break; /* a torn tail */
        keylen = get_u32(body + 13);
        if (17 + (size_t)keylen + 4 > bodylen)
            break;
        msglen = get_u32(body + 17 + keylen);
        if (21 + (size_t)keylen + msglen > bodylen)
            break;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            strata__dead_letter *p = realloc(d, nc * sizeof *p);
            if (p == NULL) {
                rc = strata__error(STRATA_ENOMEM, "out of memory reading dead letters");
                break;
            }
            memset(p + cap, 0, (nc - cap) * sizeof *p);
            d = p;
            cap = nc;
        }
        snprintf(d[n].id, sizeof d[n].id, "%zu", n + 1);
        d[n].given_up_ms = (int64_t)get_u64(body + 1);
        d[n].attempts = get_u32(body + 9);
        rc = strata__bytes_set(&d[n].key, body + 17, keylen);
        if (rc == 0)
            rc = strata__bytes_set(&d[n].error, body + 21 + keylen, msglen);
        if (rc == 0)
            rc = strata__bytes_set(&d[n].val, body + 21 + keylen + msglen, bodylen - 21 - keylen - msglen);
        n++;
        off += 8 + bodylen;
    }
    free(data);
    if (rc < 0) {
        strata__dead_letters_free(d, n);
        return rc;
    }
    *out = d;
    *nout = n;
    return 0;
}

int strata__journal_dead_rewrite(strata__journal *j, const strata__dead_letter *d, size_t n,
                                 const unsigned char *keep)
{
    char path[1200], tmp[1210];
    int fd, rc = 0;
    size_t i;

    snprintf(path, sizeof path, "%s.dead", j->path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return strata__error(STRATA_EBACKEND, "dead letters: cannot create %s: %s", tmp, strerror(errno));
    rc = write_all(fd, (const unsigned char *)J_MAGIC, J_HEADER, tmp);
    for (i = 0; i < n && rc == 0; i++) {
        size_t bodylen = 21 + d[i].key.len + d[i].error.len + d[i].val.len;
        unsigned char *rec;
        if (!keep[i])
            continue;
        if ((rec = malloc(8 + bodylen)) == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory rewriting dead letters");
            break;
        }
        rec[8] = J_DEAD;
        put_u64(rec + 9, (uint64_t)d[i].given_up_ms);
        put_u32(rec + 17, d[i].attempts);
        put_u32(rec + 21, (uint32_t)d[i].key.len);
        memcpy(rec + 25, d[i].key.data, d[i].key.len);
        put_u32(rec + 25 + d[i].key.len, (uint32_t)d[i].error.len);
        if (d[i].error.len)
            memcpy(rec + 29 + d[i].key.len, d[i].error.data, d[i].error.len);
        if (d[i].val.len)
            memcpy(rec + 29 + d[i].key.len + d[i].error.len, d[i].val.data, d[i].val.len);
        frame(rec, bodylen);
        rc = write_all(fd, rec, 8 + bodylen, tmp);
        free(rec);
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "dead letters %s: fdatasync: %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = strata__error(STRATA_EBACKEND, "dead letters %s: rename: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    j->dead_count = -1; /* counted again by the next trim */
    return rc;
}
