/* ABI v1 for afterchain service agreements written in C (wasm32, no libc).
 *
 * Host functions (module "env"): input, output, state_get, state_put, state_del, emit.
 * An entry point is `int NAME(void)`: 0 = ok, anything else = revert.
 * Agreement args and outputs are "records": a concatenation of fields, each either
 * u64 (8 bytes little-endian) or str (u32 little-endian length, then the bytes).
 * See docs/CONTRACTS.md for the record layout of each hook.
 */
#ifndef AFTERCHAIN_ABI_H
#define AFTERCHAIN_ABI_H

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

IMPORT(input) int input(void *ptr, int cap);
IMPORT(output) void output(const void *ptr, int len);
IMPORT(state_get) int state_get(const void *key, int klen, void *val, int vcap);
IMPORT(state_put) void state_put(const void *key, int klen, const void *val, int vlen);
IMPORT(state_del) void state_del(const void *key, int klen);
IMPORT(emit) void emit(const void *topic, int tlen, const void *data, int dlen);

/* The compiler may emit calls to these; there is no libc. */
void *memcpy(void *dst, const void *src, unsigned long n) {
    u8 *d = dst; const u8 *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memset(void *dst, int c, unsigned long n) {
    u8 *d = dst;
    while (n--) *d++ = (u8)c;
    return dst;
}

typedef struct { const u8 *p; u32 len; } str;
typedef struct { const u8 *buf; u32 len, pos; int bad; } reader;

#define ARGS_CAP 8192
#define OUT_CAP 1024
static u8 ARGS[ARGS_CAP];
static u8 OUT[OUT_CAP];
static u32 out_len;

static inline int read_args(reader *r) {
    int n = input(ARGS, ARGS_CAP);
    r->buf = ARGS; r->pos = 0; r->bad = 0;
    if (n < 0 || n > ARGS_CAP) { r->len = 0; r->bad = 1; return 0; }
    r->len = (u32)n;
    return 1;
}

static inline u64 rd_u64(reader *r) {
    u64 v = 0;
    if (r->bad || r->len - r->pos < 8) { r->bad = 1; return 0; }
    for (int i = 7; i >= 0; i--) v = (v << 8) | r->buf[r->pos + i];
    r->pos += 8;
    return v;
}

static inline str rd_str(reader *r) {
    str s = {0, 0};
    if (r->bad || r->len - r->pos < 4) { r->bad = 1; return s; }
    const u8 *b = r->buf + r->pos;
    u32 n = (u32)b[0] | ((u32)b[1] << 8) | ((u32)b[2] << 16) | ((u32)b[3] << 24);
    r->pos += 4;
    if (n > r->len - r->pos) { r->bad = 1; return s; }
    s.p = r->buf + r->pos; s.len = n;
    r->pos += n;
    return s;
}

static inline void wr_u64(u64 v) {
    if (out_len + 8 > OUT_CAP) return;
    for (int i = 0; i < 8; i++) OUT[out_len++] = (u8)(v >> (8 * i));
}

static inline void wr_bytes(const u8 *p, u32 n) {
    if (out_len + 4 + n > OUT_CAP) return;
    for (int i = 0; i < 4; i++) OUT[out_len++] = (u8)(n >> (8 * i));
    for (u32 i = 0; i < n; i++) OUT[out_len++] = p[i];
}

static inline u32 cstr_len(const char *s) { u32 n = 0; while (s[n]) n++; return n; }
static inline void wr_cstr(const char *s) { wr_bytes((const u8 *)s, cstr_len(s)); }
static inline void wr_str(str s) { wr_bytes(s.p, s.len); }
static inline int finish(void) { output(OUT, (int)out_len); return 0; }
/* Revert with a reason (the raw bytes of `reason` are the output). */
static inline int fail(const char *reason) { output(reason, (int)cstr_len(reason)); return 1; }

static inline int str_eq(str a, const char *lit) {
    u32 n = cstr_len(lit);
    if (a.len != n) return 0;
    for (u32 i = 0; i < n; i++) if (a.p[i] != (u8)lit[i]) return 0;
    return 1;
}

static inline int str_same(str a, str b) {
    if (a.len != b.len) return 0;
    for (u32 i = 0; i < a.len; i++) if (a.p[i] != b.p[i]) return 0;
    return 1;
}

/* The policy block that starts every hook's args. */
#define MAX_FAULTS 32
typedef struct {
    u64 has_policy, coverage_period_ms, first_response_ms, resolution_ms, penalty_amount, return_window_ms;
    str owner_org, service_org;
    u64 n_faults;
    str faults[MAX_FAULTS];
} policy;

static inline void rd_policy(reader *r, policy *p) {
    p->has_policy = rd_u64(r);
    p->coverage_period_ms = rd_u64(r);
    p->first_response_ms = rd_u64(r);
    p->resolution_ms = rd_u64(r);
    p->penalty_amount = rd_u64(r);
    p->return_window_ms = rd_u64(r);
    p->owner_org = rd_str(r);
    p->service_org = rd_str(r);
    p->n_faults = rd_u64(r);
    if (p->n_faults > MAX_FAULTS) { r->bad = 1; p->n_faults = 0; }
    for (u64 i = 0; i < p->n_faults; i++) p->faults[i] = rd_str(r);
}

/* A u64 counter in state under key (prefix, id). */
static inline u64 counter_get(const u8 *key, int klen) {
    u8 v[8];
    int n = state_get(key, klen, v, 8);
    if (n != 8) return 0;
    u64 x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | v[i];
    return x;
}

static inline void counter_put(const u8 *key, int klen, u64 x) {
    u8 v[8];
    for (int i = 0; i < 8; i++) v[i] = (u8)(x >> (8 * i));
    state_put(key, klen, v, 8);
}

/* key = prefix bytes followed by up to two strs separated by '/'; returns its length. */
static inline int make_key(u8 *key, int cap, const char *prefix, str a, str b) {
    int n = 0;
    for (const char *c = prefix; *c && n < cap; c++) key[n++] = (u8)*c;
    for (u32 i = 0; i < a.len && n < cap; i++) key[n++] = a.p[i];
    if (b.len && n < cap) key[n++] = '/';
    for (u32 i = 0; i < b.len && n < cap; i++) key[n++] = b.p[i];
    return n;
}

#endif
