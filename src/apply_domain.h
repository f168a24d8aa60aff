/* apply_domain: the rules of DOMAIN.md that more than one apply module enforces. */
#ifndef B2BD_APPLY_DOMAIN_H
#define B2BD_APPLY_DOMAIN_H

/* DOMAIN.md: at most 10,000 customers can be assigned to a company. */
#define COMPANY_MAX_CONTACTS 10000

#endif
