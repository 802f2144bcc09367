-- Proof of delivery by photo (an uploaded image the courier owns) and by the customer's signature
-- (an uploaded image, or the strokes drawn on the courier's screen), required per merchant category
-- through the same rules table as the handover code.
-- depends: 0057_delivery_safety

ALTER TABLE delivery_proof_rules DROP CONSTRAINT delivery_proof_rules_proof_check;
ALTER TABLE delivery_proof_rules ADD CONSTRAINT delivery_proof_rules_proof_check
    CHECK (proof IN ('location', 'code', 'photo', 'signature'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_proof_required_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_proof_required_check
    CHECK (proof_required IN ('location', 'code', 'photo', 'signature'));

INSERT INTO delivery_proof_rules VALUES
    ('furniture', 'photo'), ('florist', 'photo'), ('appliances', 'photo'),
    ('legal_documents', 'signature'), ('optician', 'signature');
