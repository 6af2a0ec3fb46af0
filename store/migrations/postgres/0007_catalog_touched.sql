-- The rollup run that last touched a catalogue row: that run sets the row's last_value to
-- the value of its newest point (one index seek per touched series).
ALTER TABLE series_catalog ADD COLUMN touched bigint NOT NULL DEFAULT 0;
