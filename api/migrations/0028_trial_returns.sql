-- A home trial that ends "returned" undoes the sale: the system may refund the
-- linked (delivered) order in full.

INSERT INTO order_status_transitions (from_status, to_status, actor_kind) VALUES
    ('delivered', 'refunded', 'system'),
    ('partially_refunded', 'refunded', 'system');
