-- Why a customer is suspended, as a bounded code the data plane shows in its 403 problem:
-- `denied_party` (a confirmed denied-party match), `embargoed_jurisdiction`, `screening_hit`
-- (a new hit on a re-screen, pending review) or `staff`. NULL while the account is active.
ALTER TABLE customers ADD COLUMN status_reason TEXT;
