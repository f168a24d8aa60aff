-- 0020: suspension (CONTRACT.md, "Suspension"): a company's (companies.suspended) and a
-- contact's own (contacts.suspended), independent; a contact is suspended in a company
-- while either holds. A contact row removed takes its own suspension with it. The rules
-- are in sql/functions/suspension.sql; b2bd_access_of (access.sql) shows a suspended
-- entry as "access": "suspended".
ALTER TABLE companies ADD COLUMN suspended boolean NOT NULL DEFAULT false;
ALTER TABLE contacts ADD COLUMN suspended boolean NOT NULL DEFAULT false;

-- the metrics count suspended contacts (b2bd_suspended_contacts): small, as few are
CREATE INDEX companies_suspended ON companies (shop_id) WHERE suspended;
CREATE INDEX contacts_suspended ON contacts (shop_id, company_id) WHERE suspended;

-- b2bd_assign_result takes whether the contact is suspended (its result's "suspended")
DROP FUNCTION IF EXISTS b2bd_assign_result(text, boolean, boolean, text);
