-- Double-entry ledger. Postings carry signed minor units (+ debit, - credit);
-- every entry balances to zero per currency, checked by a deferred constraint
-- trigger at commit. Entries and postings are append-only (triggers refuse
-- UPDATE, DELETE and TRUNCATE). ledger_balances is a derived running balance
-- that only the posting trigger may change; ledger_verify() recomputes it.

CREATE TABLE ledger_accounts (
    id              uuid PRIMARY KEY,
    key             text NOT NULL UNIQUE,          -- e.g. 'customer_wallet:<user id>:NPR'
    kind            text NOT NULL CHECK (kind IN (
                        'customer_wallet', 'wallet_hold', 'merchant_payable', 'courier_payable',
                        'platform_revenue', 'tax_payable', 'gateway_clearing', 'refund_expense',
                        'promotions_expense', 'unallocated_receipts', 'payouts_clearing')),
    owner_id        uuid,                          -- the user, merchant or courier, if any
    currency        char(3) NOT NULL,
    normal_side     text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    allow_negative  boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, currency)                          -- lets postings pin their currency to the account's
);

CREATE TABLE ledger_entries (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL CHECK (kind ~ '^[a-z_]+\.[a-z_]+$'),
    business_key    text NOT NULL UNIQUE,          -- one operation posts at most once
    reference_type  text,
    reference_id    uuid,
    memo            text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_reference ON ledger_entries (reference_type, reference_id);

CREATE TABLE ledger_postings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id      uuid NOT NULL REFERENCES ledger_entries (id),
    account_id    uuid NOT NULL,
    currency      char(3) NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor <> 0),
    FOREIGN KEY (account_id, currency) REFERENCES ledger_accounts (id, currency),
    UNIQUE (entry_id, account_id)                  -- the application nets legs per account
);
CREATE INDEX ledger_postings_account ON ledger_postings (account_id, id);

CREATE TABLE ledger_balances (
    account_id       uuid PRIMARY KEY REFERENCES ledger_accounts (id),
    orientation      smallint NOT NULL CHECK (orientation IN (1, -1)),  -- +1 debit-normal, -1 credit-normal
    allow_negative   boolean NOT NULL,
    balance_minor    bigint NOT NULL DEFAULT 0,      -- in the account's normal orientation
    postings         bigint NOT NULL DEFAULT 0,
    CONSTRAINT ledger_balance_not_negative CHECK (allow_negative OR balance_minor >= 0)
);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger table % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_immutable BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_immutable BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- Balances change only from the posting trigger (trigger depth > 1), never by hand.
CREATE FUNCTION ledger_balances_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'ledger_balances is derived from postings; % refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER ledger_balances_derived BEFORE INSERT OR UPDATE OR DELETE ON ledger_balances
    FOR EACH ROW EXECUTE FUNCTION ledger_balances_guard();

CREATE FUNCTION ledger_open_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_balances (account_id, orientation, allow_negative)
    VALUES (NEW.id, CASE WHEN NEW.normal_side = 'debit' THEN 1 ELSE -1 END, NEW.allow_negative);
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_open_balance AFTER INSERT ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_open_balance();

CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ledger_balances
       SET balance_minor = balance_minor + NEW.amount_minor * orientation,
           postings = postings + 1
     WHERE account_id = NEW.account_id;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting();

-- At commit: every entry has at least two postings and sums to zero per currency.
CREATE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry uuid := (to_jsonb(NEW) ->> CASE WHEN TG_TABLE_NAME = 'ledger_entries' THEN 'id' ELSE 'entry_id' END)::uuid;
    bad record;
BEGIN
    IF (SELECT count(*) FROM ledger_postings WHERE entry_id = entry) < 2 THEN
        RAISE EXCEPTION 'journal entry % has fewer than two postings', entry
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT currency, sum(amount_minor) AS total INTO bad
      FROM ledger_postings WHERE entry_id = entry
     GROUP BY currency HAVING sum(amount_minor) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: off by %', entry, bad.currency, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry();
CREATE CONSTRAINT TRIGGER ledger_postings_balanced AFTER INSERT ON ledger_postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry();

-- Accounts whose running balance disagrees with the sum of their postings (expect none).
CREATE FUNCTION ledger_verify() RETURNS TABLE (account_id uuid, stored bigint, derived bigint)
LANGUAGE sql STABLE AS $$
    SELECT b.account_id, b.balance_minor, COALESCE(sum(p.amount_minor), 0) * b.orientation
      FROM ledger_balances b LEFT JOIN ledger_postings p ON p.account_id = b.account_id
     GROUP BY b.account_id, b.balance_minor, b.orientation
    HAVING b.balance_minor <> COALESCE(sum(p.amount_minor), 0) * b.orientation
$$;
