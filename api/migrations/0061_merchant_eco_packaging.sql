-- Eco packaging is a merchant attribute the ranker reads (eco_match = eco packaging x the
-- customer's eco share); the matching index loads it with the other ranking columns.

ALTER TABLE merchants ADD COLUMN eco_packaging boolean NOT NULL DEFAULT false;
