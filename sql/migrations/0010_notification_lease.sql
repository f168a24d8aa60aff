-- 0010: a notification's send is leased before b2bd talks to the mail server.
-- A worker claims a due notification by committing lease_until (the database's clock)
-- and leased_by (its own random token), then sends with no transaction open; other
-- workers, of any instance, skip a row whose lease has not expired. The outcome is
-- recorded only by the lease's holder, and clears the lease. A lease outlives the
-- longest send (the notifier's SMTP timeout plus a margin, see src/notifier.c), so at
-- most one send of a notification is in flight, even when the worker's database
-- session is lost during the send. An expired lease (the worker died, or could not
-- record the outcome) makes the notification due again.

ALTER TABLE notifications
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN leased_by   text;
