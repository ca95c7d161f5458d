/* A complete service agreement: all three hooks in one contract, as a policy names one
 * contract for every question (the rules are those of warranty.c, sla.c and refund.c). */
#include "warranty.c"
#include "sla.c"
#include "refund.c"
