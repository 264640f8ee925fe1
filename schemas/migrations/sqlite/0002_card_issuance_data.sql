-- Issuance data the switch verifies a card against, kept with the card (issue 5):
--   pan_sequence_number  EMV tag 5F34, an input of the ICC master-key derivation (EMV Book 2 A1.4);
--   icc_algorithm        the debit application's cryptography: 'tdes' (EMV) or 'sm4' (PBOC 3.0);
--   pin_offset           IBM 3624 PIN offset (ISO 9564 / IBM 3624), which is not secret without
--                        the PVK held in the HSM; NULL when the issuer verifies the PIN itself.
-- No column holds a PIN, a key or a clear PAN.
ALTER TABLE card ADD COLUMN pan_sequence_number TEXT NOT NULL DEFAULT '00'
    CHECK (length(pan_sequence_number) = 2);
ALTER TABLE card ADD COLUMN icc_algorithm TEXT CHECK (icc_algorithm IN ('tdes', 'sm4'));
ALTER TABLE card ADD COLUMN pin_offset TEXT CHECK (length(pin_offset) BETWEEN 4 AND 12);
-- The cardholder's medical-insurance scheme, the first key of the bill-split policy table:
-- 'employee' (城镇职工基本医疗保险) or 'resident' (城乡居民基本医疗保险); NULL when uninsured.
ALTER TABLE card ADD COLUMN insurance_category TEXT
    CHECK (insurance_category IN ('employee', 'resident'));
