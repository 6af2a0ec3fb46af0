-- The outbox carries the violation id and the event; the dispatcher reads the violation
-- itself (as it is when the notification goes out), so the payload column is gone.
ALTER TABLE outbox DROP COLUMN payload;
