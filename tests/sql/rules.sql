-- A few rules of the SQL functions (sql/functions), tested directly with pgTAP on a
-- database that b2bd brought to its schema (tests/integration/test_sql_rules.py runs it
-- with psql and fails on any "not ok"). Everything runs in one transaction, rolled back.
BEGIN;
SELECT plan(12);

-- result.sql: the result message, applied and rejected, in the contract's key order
SELECT is(b2bd_result_text('00000000-0000-4000-8000-000000000001', 'c-1', 'assign', 's-1', NULL,
                           '{"a":1}', NULL, NULL, NULL, '2026-01-01T00:00:00.000Z'),
          '{"event_id":"00000000-0000-4000-8000-000000000001","command_id":"c-1","type":"assign",'
          '"shop_id":"s-1","import_id":null,"status":"applied","result":{"a":1},"error":null,'
          '"processed_at":"2026-01-01T00:00:00.000Z"}',
          'b2bd_result_text: applied');
SELECT is(b2bd_result_text('00000000-0000-4000-8000-000000000002', 'c-2', NULL, NULL, 'imp',
                           NULL, 'NOT_FOUND', 'no "such" customer', 'payload.customer.id', 't'),
          '{"event_id":"00000000-0000-4000-8000-000000000002","command_id":"c-2","type":null,'
          '"shop_id":null,"import_id":"imp","status":"rejected","result":null,"error":'
          '{"code":"NOT_FOUND","message":"no \"such\" customer","field":"payload.customer.id"},'
          '"processed_at":"t"}',
          'b2bd_result_text: rejected, quotes escaped, missing type and shop null');
SELECT throws_ok($$SELECT b2bd_reject('NOT_FOUND', 'payload.x', 'no such thing')$$,
                 'B2B01', 'no such thing', 'b2bd_reject raises B2B01');

-- the message limit: key + text + 256 bytes of framing, under b2bd.max_message_bytes
SELECT set_config('b2bd.max_message_bytes', '300', true);
SELECT ok(b2bd_result_fits('\x00'::bytea, repeat('x', 43)), 'b2bd_result_fits: 1 + 43 + 256 = 300 fits');
SELECT ok(NOT b2bd_result_fits('\x00'::bytea, repeat('x', 44)), 'b2bd_result_fits: 301 does not');
SELECT throws_ok($$SELECT b2bd_result_checked('\x00'::bytea, repeat('x', 44))$$, 'B2B14', NULL,
                 'b2bd_result_checked raises B2B14 over the limit');
SELECT set_config('b2bd.max_message_bytes', '', true);

-- assign.sql: one command through b2bd_assign, and the company's contact limit
INSERT INTO shops (shop_id, name) VALUES ('pgtap', 'pgTAP');
INSERT INTO companies (shop_id, company_id, name) VALUES ('pgtap', 'co', 'Co');
INSERT INTO locations (shop_id, location_id, company_id) VALUES ('pgtap', 'loc', 'co');
INSERT INTO customers (shop_id, customer_id, email) VALUES ('pgtap', 'cu-1', 'one@x.example'),
                                                           ('pgtap', 'cu-2', 'two@x.example');
SELECT is((b2bd_assign('pgtap', 'co', 'cu-1', NULL, NULL, NULL, NULL, ARRAY['loc'],
                       ARRAY['ordering_only'], 1) ->> 'changed')::boolean, true,
          'b2bd_assign: a new contact with a role is a change');
SELECT is((SELECT contact_count FROM companies WHERE shop_id = 'pgtap' AND company_id = 'co'), 1,
          'b2bd_assign: the contact took a seat');
SELECT is((b2bd_assign('pgtap', 'co', 'cu-1', NULL, NULL, NULL, NULL, ARRAY['loc'],
                       ARRAY['ordering_only'], 1) ->> 'changed')::boolean, false,
          'b2bd_assign: the same roles again change nothing (and take no seat)');
SELECT throws_ok($$SELECT b2bd_assign('pgtap', 'co', 'cu-2', NULL, NULL, NULL, NULL, ARRAY['loc'],
                                      ARRAY['ordering_only'], 1)$$,
                 'B2B01', NULL, 'b2bd_assign: a second contact over a limit of 1 is rejected');
SELECT is((SELECT count(*)::integer FROM contacts WHERE shop_id = 'pgtap'), 1,
          'b2bd_assign: the rejected assign left no contact');
SELECT throws_ok($$SELECT b2bd_assign('pgtap', 'co', 'ghost', NULL, NULL, NULL, NULL, ARRAY['loc'],
                                      ARRAY['ordering_only'], 10)$$,
                 'B2B01', NULL, 'b2bd_assign: an unknown customer id is rejected');

SELECT * FROM finish();
ROLLBACK;
