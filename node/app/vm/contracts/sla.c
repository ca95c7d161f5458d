/* SLA penalty agreement (ABI v1): hook `sla_penalty`.
 * Rule: the policy's penalty, times (breaches so far + 1) up to 4x, halved for a missed
 * first response, plus 10% of the penalty per full day late (at most 30 days); the
 * assigned organisation pays the customer; one ticket pays at most 10x the penalty in
 * total (tracked in state under "paid/<ticket id>").
 * Output record: amount u64, payer str, payee str. */
#include "abi.h"

#define DAY_MS 86400000ULL
#define MAX_PENALTY 1000000000000000ULL

EXPORT(sla_penalty) int sla_penalty(void) {
    reader r;
    policy p;
    read_args(&r);
    rd_policy(&r, &p);
    str ticket_id = rd_str(&r), deadline = rd_str(&r);
    u64 deadline_ms = rd_u64(&r), now = rd_u64(&r);
    str assigned = rd_str(&r), customer = rd_str(&r);
    u64 breaches_before = rd_u64(&r);
    if (r.bad || r.pos != r.len) return fail("bad_args");
    if (p.penalty_amount > MAX_PENALTY) return fail("penalty_out_of_range");

    u64 base = p.penalty_amount;
    u64 mult = breaches_before >= 3 ? 4 : breaches_before + 1;
    u64 amount = base * mult;
    if (str_eq(deadline, "first_response")) amount /= 2;
    u64 late_days = now > deadline_ms ? (now - deadline_ms) / DAY_MS : 0;
    if (late_days > 30) late_days = 30;
    amount += base * late_days / 10;

    str none = {0, 0};
    u8 key[256];
    int klen = make_key(key, sizeof key, "paid/", ticket_id, none);
    u64 paid = counter_get(key, klen);
    u64 cap = base * 10;
    if (paid >= cap) amount = 0;
    else if (amount > cap - paid) amount = cap - paid;
    if (amount) counter_put(key, klen, paid + amount);

    wr_u64(amount); wr_str(assigned); wr_str(customer);
    return finish();
}
