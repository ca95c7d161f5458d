/* Warranty eligibility agreement (ABI v1): hook `claim_eligibility`.
 * Rule: a recalled product is covered; otherwise the claim must fall inside the coverage
 * period (from warranty start, else from the sale), its fault must be covered (an empty
 * list covers every fault), and a product gets at most 3 covered claims (counted in
 * state under "claims/<gtin>/<serial>").
 * Output record: covered u64 (0/1), reason str. */
#include "abi.h"

#define MAX_CLAIMS 3

EXPORT(claim_eligibility) int claim_eligibility(void) {
    reader r;
    policy p;
    read_args(&r);
    rd_policy(&r, &p);
    str ticket_id = rd_str(&r), kind = rd_str(&r), fault = rd_str(&r);
    str gtin = rd_str(&r), serial = rd_str(&r), batch = rd_str(&r);
    u64 recalled = rd_u64(&r);
    str customer = rd_str(&r);
    u64 warranty_start = rd_u64(&r), sale_time = rd_u64(&r), now = rd_u64(&r);
    (void)ticket_id; (void)kind; (void)batch; (void)customer;
    if (r.bad || r.pos != r.len) return fail("bad_args");

    if (recalled) { wr_u64(1); wr_cstr("recall"); return finish(); }
    u64 start = warranty_start ? warranty_start : sale_time;
    if (start == 0) { wr_u64(0); wr_cstr("warranty_unknown"); return finish(); }
    if (now > start + p.coverage_period_ms) { wr_u64(0); wr_cstr("warranty_expired"); return finish(); }
    if (p.n_faults > 0) {
        int found = 0;
        for (u64 i = 0; i < p.n_faults; i++) if (str_same(p.faults[i], fault)) found = 1;
        if (!found) { wr_u64(0); wr_cstr("fault_not_covered"); return finish(); }
    }
    u8 key[256];
    int klen = make_key(key, sizeof key, "claims/", gtin, serial);
    u64 claims = counter_get(key, klen);
    if (claims >= MAX_CLAIMS) { wr_u64(0); wr_cstr("claim_limit"); return finish(); }
    counter_put(key, klen, claims + 1);
    wr_u64(1); wr_cstr("covered");
    return finish();
}
