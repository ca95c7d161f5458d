/* Return/refund agreement (ABI v1): hook `return_decision`.
 * Rule: the return must have been requested within the window (the policy's, else 30
 * days) from the sale; a customer gets at most 5 refunds (state "returns/<customer>");
 * "as_new" is refunded, "used" only for an escrow of at most 50000 minor units, anything
 * else goes back to the depositor.
 * Output record: refund u64 (0/1), reason str. */
#include "abi.h"

#define DEFAULT_WINDOW_MS 2592000000ULL
#define MAX_REFUNDS 5
#define USED_REFUND_MAX 50000

EXPORT(return_decision) int return_decision(void) {
    reader r;
    policy p;
    read_args(&r);
    rd_policy(&r, &p);
    str ticket_id = rd_str(&r), condition = rd_str(&r);
    u64 escrow = rd_u64(&r);
    str customer = rd_str(&r);
    u64 requested = rd_u64(&r), received = rd_u64(&r), sale_time = rd_u64(&r);
    (void)ticket_id; (void)received;
    if (r.bad || r.pos != r.len) return fail("bad_args");

    u64 window = (p.has_policy && p.return_window_ms) ? p.return_window_ms : DEFAULT_WINDOW_MS;
    if (sale_time && requested > sale_time + window) { wr_u64(0); wr_cstr("outside_window"); return finish(); }
    str none = {0, 0};
    u8 key[256];
    int klen = make_key(key, sizeof key, "returns/", customer, none);
    u64 refunds = counter_get(key, klen);
    if (refunds >= MAX_REFUNDS) { wr_u64(0); wr_cstr("return_limit"); return finish(); }
    int refund;
    if (str_eq(condition, "as_new")) refund = 1;
    else if (str_eq(condition, "used")) {
        if (escrow > USED_REFUND_MAX) { wr_u64(0); wr_cstr("used_high_value"); return finish(); }
        refund = 1;
    } else refund = 0;
    if (!refund) {
        wr_u64(0);
        u8 reason[64];
        u32 n = 0;
        const char *pre = "condition_";
        while (pre[n]) { reason[n] = (u8)pre[n]; n++; }
        for (u32 i = 0; i < condition.len && n < 32; i++) reason[n++] = condition.p[i];
        wr_bytes(reason, n);
        return finish();
    }
    counter_put(key, klen, refunds + 1);
    wr_u64(1); wr_cstr("condition_ok");
    return finish();
}
